import {
  AndAtom,
  booleanToTypedValue,
  capitalize,
  DotAtom,
  fhirPathIs,
  FhirPathAtom,
  FunctionAtom,
  getTypedPropertyValueWithoutSchema,
  getTypedPropertyValueWithSchema,
  isEmpty,
  OrAtom,
  removeDuplicates,
  singleton,
  SymbolAtom,
  toJsBoolean,
  tryGetDataType,
  UnionAtom,
  type Atom,
  type AtomContext,
  type InternalSchemaElement,
  type InternalTypeSchema,
  type TypedValue,
} from '@medplum/core';

/**
 * FHIRPath (search parameters, invariants) run as direct property reads. Nearly every R4 expression
 * is a path of element names with `ofType(T)`, `where(…)`, `|`, `and`, `or`; evaluated through
 * @medplum/core's atoms each step costs a schema lookup, a choice-type scan and a copy of every
 * value with its path. Compiled here, each step reads the property the element's schema names, and
 * the rest reuses medplum's own functions, so the values (and their FHIRPath types) are exactly
 * those medplum's evaluation returns. Any other atom (functions, variables, operators) is
 * evaluated by medplum itself, on the input its compiled neighbours produce.
 */
export type Path = (context: AtomContext, input: TypedValue[]) => TypedValue[];

/** An atom that keeps the References among `inner`'s values whose `reference` starts with `prefix`. */
export interface ReferenceFilter extends Atom {
  readonly inner: Atom;
  readonly prefix: string;
}

const paths = new WeakMap<Atom, Path>();

/** `atom.eval(context, input)`, compiled once per atom. */
export function evaluate(atom: Atom, context: AtomContext, input: TypedValue[]): TypedValue[] {
  let path = paths.get(atom);
  if (!path) {
    path = compile(atom);
    paths.set(atom, path);
  }
  return path(context, input);
}

function compile(atom: Atom): Path {
  if ('inner' in atom && 'prefix' in atom) {
    const { inner, prefix } = atom as ReferenceFilter;
    const values = compile(inner);
    return (c, i) => values(c, i).filter((v) => typeof (v.value as { reference?: unknown })?.reference === 'string' && (v.value as { reference: string }).reference.startsWith(prefix));
  }
  if (atom instanceof FhirPathAtom) {
    const child = compile(atom.child);
    // as FhirPathAtom.eval: each input item is evaluated on its own, as $this
    return (c, input) => {
      if (input.length === 1) return child({ parent: c, variables: { $this: input[0] } }, input);
      return input.length === 0 ? child(c, []) : input.flatMap((e) => child({ parent: c, variables: { $this: e } }, [e]));
    };
  }
  if (atom instanceof DotAtom) {
    const left = compile(atom.left);
    const right = compile(atom.right);
    return (c, input) => right(c, left(c, input));
  }
  if (atom instanceof UnionAtom) {
    const left = compile(atom.left);
    const right = compile(atom.right);
    return (c, input) => removeDuplicates([...left(c, input), ...right(c, input)]);
  }
  if (atom instanceof AndAtom || atom instanceof OrAtom) {
    const left = compile(atom.left);
    const right = compile(atom.right);
    const and = atom instanceof AndAtom;
    // FHIRPath's three-valued logic, as medplum's AndAtom and OrAtom apply it
    return (c, input) => {
      const l = singleton(left(c, input), 'boolean')?.value;
      const r = singleton(right(c, input), 'boolean')?.value;
      if (and) {
        if (l === true && r === true) return booleanToTypedValue(true);
        return l === false || r === false ? booleanToTypedValue(false) : [];
      }
      if (l === false && r === false) return booleanToTypedValue(false);
      return l || r ? booleanToTypedValue(true) : [];
    };
  }
  if (atom instanceof SymbolAtom) {
    const name = atom.name;
    // variables ($this, %resource…) are looked up, not read
    if (name.startsWith('$') || name.startsWith('%')) return (c, i) => atom.eval(c, i);
    // one symbol nearly always reads values of one type: its last schema and element are kept at hand
    let lastSchema: InternalTypeSchema | undefined;
    let lastElement: Element | undefined;
    return (_c, input) => {
      const out: TypedValue[] = [];
      for (const e of input) {
        const value = e.value as Record<string, unknown> | undefined;
        if (!value || typeof value !== 'object') continue;
        if (value.resourceType === name) {
          out.push(e);
          continue;
        }
        const schema = tryGetDataType(e.type);
        if (schema !== lastSchema) {
          lastSchema = schema;
          lastElement = schema && elementOf(schema, name);
        }
        append(lastElement ? readWithSchema(e, name, lastElement) : getTypedPropertyValueWithoutSchema(e, name), out);
      }
      return out;
    };
  }
  if (atom instanceof FunctionAtom && atom.args.length === 1) {
    const [arg] = atom.args;
    if (atom.name === 'ofType' && arg instanceof SymbolAtom) {
      const type = arg.name;
      return (_c, input) => input.filter((e) => fhirPathIs(e, type));
    }
    if (atom.name === 'where') return (c, input) => input.filter((e) => toJsBoolean(arg.eval(c, [e])));
  }
  return (c, i) => atom.eval(c, i);
}

/** Keeps the values that are defined, as medplum's SymbolAtom navigation does. */
function append(result: TypedValue | TypedValue[] | undefined, out: TypedValue[]): void {
  if (Array.isArray(result)) {
    for (const r of result) if (r.value !== undefined) out.push(r);
  } else if (result && result.value !== undefined) {
    out.push(result);
  }
}

interface Element {
  readonly definition: InternalSchemaElement;
  /** The JSON keys the element can take, with the type each one means (valueQuantity → Quantity). */
  readonly keys: readonly { key: string; extension: string; type: string }[];
}

const elements = new WeakMap<InternalTypeSchema, Map<string, Element | null>>();

function elementOf(schema: InternalTypeSchema, name: string): Element | undefined {
  let byName = elements.get(schema);
  if (!byName) {
    byName = new Map();
    elements.set(schema, byName);
  }
  let element = byName.get(name);
  if (element === undefined) {
    element = describe(schema, name);
    byName.set(name, element);
  }
  return element ?? undefined;
}

/** As medplum's getElementDefinitionFromElements: the exact name, `name[x]`, or a choice key's element. */
function describe(schema: InternalTypeSchema, name: string): Element | null {
  let definition = schema.elements[name] ?? schema.elements[`${name}[x]`];
  for (let i = 0; !definition && i < name.length; i++) {
    if (name[i] >= 'A' && name[i] <= 'Z') definition = schema.elements[`${name.slice(0, i)}[x]`];
  }
  if (!definition || !definition.type?.length) return null;
  const last = definition.path.slice(definition.path.lastIndexOf('.') + 1);
  const choice = last.endsWith('[x]');
  const base = choice ? last.slice(0, -3) : last;
  return {
    definition,
    keys: definition.type.map((t) => {
      const key = choice ? base + capitalize(t.code) : base;
      return { key, extension: `_${key}`, type: t.code };
    }),
  };
}

/**
 * medplum's getTypedPropertyValueWithSchema without its per-call string building: the first key
 * present gives the value and its type. A primitive extension (`_key`) is left to medplum, which
 * merges it into the value.
 */
function readWithSchema(e: TypedValue, name: string, element: Element): TypedValue | TypedValue[] | undefined {
  const value = e.value as Record<string, unknown>;
  let found: unknown;
  let type = '';
  for (const k of element.keys) {
    if (value[k.extension] !== undefined) return getTypedPropertyValueWithSchema(e, name, element.definition);
    found = value[k.key];
    if (found !== undefined) {
      type = k.type;
      break;
    }
  }
  if (isEmpty(found)) return undefined;
  if (type === 'Element' || type === 'BackboneElement') type = element.definition.type[0].code;
  if (Array.isArray(found)) return found.map((v) => typed(v, type));
  return typed(found, type);
}

/** A contained resource is typed by its resourceType. */
function typed(value: unknown, type: string): TypedValue {
  if (type === 'Resource' && value && typeof value === 'object' && 'resourceType' in value) return { type: value.resourceType as string, value };
  return { type, value };
}
