import {
  fhirTypeToJsType,
  isResourceType,
  parseFhirPath,
  toTypedValue,
  tryGetDataType,
  validationRegexes,
  type InternalSchemaElement,
  type InternalTypeSchema,
  type TypedValue,
} from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { evaluate } from './compiled-path.ts';

/**
 * A quick yes to "would @medplum/core's `validateResource` find no error in this resource?".
 *
 * `validateResource` visits every element its schemas define, present or not (about fifty per
 * Observation, fifty value[x] types per Extension), which makes it the costliest step of a write.
 * This walks only the keys the resource has and applies the same error rules: known element, array
 * or single value, cardinality, required elements, primitive JSON types and formats, and the
 * error-severity invariants on the resource and on each present element (FHIRPath, compiled as
 * search parameters are: same values as medplum's evaluation). Anything it does not model (primitive extensions, empty or null values, two values of one choice element, slicing, fixed and pattern
 * values) answers false, and the caller runs the full validator, which also words the errors. So
 * `true` is only ever given where the full validator would report no error; false proves nothing.
 */
export function passesBaseStructure(resource: Resource): boolean {
  const type = resource.resourceType;
  if (typeof type !== 'string' || !isResourceType(type)) return false;
  const schema = compiled(tryGetDataType(type) as InternalTypeSchema);
  if (!schema) return false;
  const root = toTypedValue(resource);
  const variables = { '%ucum': UCUM, '%resource': root, '%rootResource': root };
  return invariantsHold(schema.rootInvariants, { ...root, path: type }, variables) && objectPasses(resource as unknown as Record<string, unknown>, schema, true, variables);
}

interface Field {
  readonly element: InternalSchemaElement;
  /** The type the value is read as: a choice key's own type, a backbone element's inner type. */
  readonly type: string;
  /** For choice keys (valueQuantity…): the element's name (value[x]), so that two keys of one choice are caught. */
  readonly choice?: string;
  readonly invariants: readonly Invariant[];
}

interface Invariant {
  readonly expression: ReturnType<typeof parseFhirPath>;
}

interface Compiled {
  readonly schema: InternalTypeSchema;
  readonly fields: ReadonlyMap<string, Field>;
  /** Elements with min > 0, each as the keys that can carry it. */
  readonly required: readonly (readonly string[])[];
  readonly rootInvariants: readonly Invariant[];
}

type Variables = Record<string, TypedValue>;

const UCUM = toTypedValue('http://unitsofmeasure.org');
/** Invariants the full validator skips too (ele-1 and those needing descendants() or back-compat). */
const SKIPPED_INVARIANTS = new Set(['ele-1', 'dom-3', 'org-1', 'sdf-19']);
const MAX_STRING = 1024 * 1024;
const INTEGER_RANGE: Record<string, [number, number]> = {
  integer: [-2_147_483_648, 2_147_483_647],
  positiveInt: [1, 2_147_483_647],
  unsignedInt: [0, 2_147_483_647],
};

/** Keyed by the schema object itself: a schema medplum re-indexes is compiled afresh. */
const cache = new WeakMap<InternalTypeSchema, Compiled | null>();

function compiled(schema: InternalTypeSchema | undefined): Compiled | undefined {
  if (!schema) return undefined;
  let c = cache.get(schema);
  if (c === undefined) {
    c = compile(schema);
    cache.set(schema, c);
  }
  return c ?? undefined;
}

function compile(schema: InternalTypeSchema): Compiled | null {
  const fields = new Map<string, Field>();
  const required: string[][] = [];
  for (const [name, element] of Object.entries(schema.elements)) {
    // profile-style nested paths, slicing and fixed/pattern values are left to the full validator
    if (name.includes('.') || element.slicing || element.fixed || element.pattern) return null;
    const invariants = invariantsOf(element.constraints);
    const keys: string[] = [];
    if (name.endsWith('[x]')) {
      const prefix = name.slice(0, -3);
      for (const t of element.type) {
        const key = prefix + t.code.charAt(0).toUpperCase() + t.code.slice(1);
        fields.set(key, { element, type: t.code, choice: name, invariants });
        keys.push(key);
      }
    } else {
      const type = element.type[0]?.code;
      if (!type) return null;
      fields.set(name, { element, type, invariants });
      keys.push(name);
    }
    if (element.min > 0) required.push(keys);
  }
  return { schema, fields, required, rootInvariants: invariantsOf(schema.constraints) };
}

function invariantsOf(constraints: InternalSchemaElement['constraints']): Invariant[] {
  return (constraints ?? [])
    .filter((c) => c.severity === 'error' && !SKIPPED_INVARIANTS.has(c.key))
    .map((c) => ({ expression: parseFhirPath(c.expression) }));
}

function invariantsHold(invariants: readonly Invariant[], value: TypedValue & { path: string }, variables: Variables): boolean {
  if (invariants.length === 0) return true;
  const scoped = { ...variables, '%context': value };
  for (const { expression } of invariants) {
    try {
      const result = evaluate(expression, { variables: scoped }, [value]);
      if (result.length !== 1 || (result[0].value as { valueOf(): unknown } | undefined)?.valueOf() !== true) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** `isResource`: the object is a resource (the root, a contained one), so it carries `resourceType`. */
function objectPasses(obj: Record<string, unknown>, schema: Compiled, isResource: boolean, variables: Variables): boolean {
  let choices: string[] | undefined;
  for (const key in obj) {
    if (key === 'resourceType') {
      if (isResource) continue;
      return false;
    }
    const field = schema.fields.get(key);
    if (!field) return false;
    if (field.choice) {
      if (choices?.includes(field.choice)) return false;
      (choices ??= []).push(field.choice);
    }
    const value = obj[key];
    const { element } = field;
    if (element.isArray) {
      if (!Array.isArray(value) || value.length === 0 || value.length < element.min || value.length > element.max) return false;
      for (const item of value) if (!valuePasses(item, field, schema, variables)) return false;
    } else {
      if (Array.isArray(value) || element.max < 1) return false;
      if (!valuePasses(value, field, schema, variables)) return false;
    }
  }
  for (const keys of schema.required) {
    if (!keys.some((k) => obj[k] !== undefined)) return false;
  }
  return true;
}

function valuePasses(value: unknown, field: Field, parent: Compiled, variables: Variables): boolean {
  if (value === null || value === undefined) return false;
  const { type } = field;
  const jsType = (fhirTypeToJsType as Record<string, string | undefined>)[type];
  if (jsType !== undefined) {
    if (typeof value !== jsType || !primitivePasses(value as string | number | boolean, type)) return false;
  } else if (type === 'Resource') {
    // contained resources and Bundle entries: checked as resources, with %resource bound to them
    const inner = value as Resource;
    if (typeof inner !== 'object' || typeof inner.resourceType !== 'string' || !isResourceType(inner.resourceType)) return false;
    const schema = compiled(tryGetDataType(inner.resourceType));
    if (!schema || !objectPasses(inner as unknown as Record<string, unknown>, schema, true, { ...variables, '%resource': toTypedValue(inner) })) return false;
  } else {
    if (typeof value !== 'object' || Array.isArray(value) || 'resourceType' in value) return false;
    const schema = compiled(parent.schema.innerTypes.find((t) => t.name === type) ?? tryGetDataType(type));
    if (!schema || Object.keys(value).length === 0) return false;
    if (!objectPasses(value as Record<string, unknown>, schema, false, variables)) return false;
  }
  const typed = type === 'Resource' ? (value as Resource).resourceType : type;
  return invariantsHold(field.invariants, { type: typed, value, path: field.element.path }, variables);
}

function primitivePasses(value: string | number | boolean, type: string): boolean {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return false;
    const range = INTEGER_RANGE[type];
    return !range || (Number.isInteger(value) && value >= range[0] && value <= range[1]);
  }
  if (typeof value !== 'string') return true;
  if (type === 'base64Binary') return base64Passes(value);
  if (value.length > MAX_STRING || value.trim() === '') return false;
  const pattern = validationRegexes[type];
  if (pattern && !pattern.test(value)) return false;
  return !(type === 'date' || type === 'dateTime' || type === 'instant') || dayExists(value);
}

/** Canonical base64 with at most two `=` of padding, decoding to at most 1 MiB. */
function base64Passes(value: string): boolean {
  return value.length > 0 && value.length % 4 === 0 && value.length <= (MAX_STRING / 3) * 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(value);
}

/** 2023-02-29 matches the date pattern but is no day. */
function dayExists(value: string): boolean {
  if (value.length < 10) return true;
  const year = Number(value.slice(0, 4));
  const month = Number(value.slice(5, 7));
  return Number(value.slice(8, 10)) <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}
