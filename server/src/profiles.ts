import { readdirSync, readFileSync } from 'node:fs';
import {
  capitalize,
  deepEquals,
  deepIncludes,
  evalFhirPathTyped,
  getElementDefinitionTypeName,
  parseFhirPath,
  type TypedValue,
} from '@medplum/core';
import { r4Bundle } from './r4-bundles.ts';
import type {
  CodeSystem,
  CodeSystemConcept,
  ElementDefinition,
  OperationOutcomeIssue,
  Reference,
  Resource,
  StructureDefinition,
  ValueSet,
} from '@medplum/fhirtypes';

/**
 * Vigil's own profiles (fhir-profiles/), checked on every resource that claims one in
 * `meta.profile`. The files hold differentials only: snapshots are generated here from the R4 base
 * definitions. @medplum/core's `validateResource(r, { profile })` re-parses the snapshot on every
 * call (~1.5 ms, ten times the base validation), so each differential is compiled once into
 * checks instead; base R4 validation stays the caller's job, and only what a profile adds to its
 * base is checked: cardinality, choice types, reference targets, fixed and pattern values, pattern
 * slices on `$this`, extensions sliced by url (typed with Vigil's extension definitions), required
 * bindings to Vigil's value sets, and error invariants (FHIRPath). A construct outside that list
 * fails at load time rather than being silently ignored.
 *
 * Profile URLs Vigil does not know (HL7 vital-signs, US Core…) are ignored, not rejected: FHIR lets
 * a server accept claims it cannot check, and devices and EHRs send such claims routinely.
 */

type Conformance = StructureDefinition | CodeSystem | ValueSet;

const PROFILE_DIR = new URL('../../fhir-profiles/', import.meta.url);
const FILE_PATTERN = /^(StructureDefinition|CodeSystem|ValueSet)-[A-Za-z0-9\-.]+\.json$/;
const HL7_SD = 'http://hl7.org/fhir/StructureDefinition/';

interface Profile {
  readonly definition: StructureDefinition;
  readonly rules: readonly Rule[];
}

interface Loaded {
  readonly profiles: ReadonlyMap<string, Profile>;
  readonly resources: readonly Conformance[];
}

let loaded: Loaded | undefined;
const state = (): Loaded => (loaded ??= load());

/** Reads and compiles fhir-profiles/ once (~300 ms); call at start-up so that a broken profile stops the server. */
export function loadProfiles(): void {
  state();
}

/** A Vigil profile (with its generated snapshot) by canonical URL, `|version` allowed. Shared: do not modify. */
export function getProfile(url: string): StructureDefinition | undefined {
  return state().profiles.get(canonical(url))?.definition;
}

/** Every StructureDefinition (with snapshot), CodeSystem and ValueSet in fhir-profiles/, to publish or seed. */
export function conformanceResources(): readonly Conformance[] {
  return state().resources;
}

/**
 * The errors of `resource` against each known profile in `profiles` (by default those it claims);
 * unknown URLs are skipped. Empty when it conforms.
 */
export function validateAgainstProfiles(resource: Resource, profiles: readonly string[] = resource.meta?.profile ?? []): OperationOutcomeIssue[] {
  const known = state().profiles;
  const issues: OperationOutcomeIssue[] = [];
  const root: Node = { value: resource, path: resource.resourceType, type: resource.resourceType };
  for (const url of new Set(profiles.map(canonical))) {
    const profile = known.get(url);
    if (!profile) continue;
    if (profile.definition.type !== resource.resourceType) {
      issues.push(error('structure', `Profile ${profile.definition.id} is for ${profile.definition.type}, not ${resource.resourceType}`, `${resource.resourceType}.meta.profile`));
      continue;
    }
    for (const rule of profile.rules) rule(root, issues);
  }
  return issues;
}

const canonical = (url: string): string => url.split('|')[0];

function error(code: OperationOutcomeIssue['code'], diagnostics: string, expression: string): OperationOutcomeIssue {
  return { severity: 'error', code, diagnostics, expression: [expression] };
}

function load(): Loaded {
  const files = readdirSync(PROFILE_DIR).filter((f) => FILE_PATTERN.test(f)).sort();
  const parsed = files.map((f) => JSON.parse(readFileSync(new URL(f, PROFILE_DIR), 'utf8')) as Conformance);
  const valueSets = expandValueSets(parsed);
  const base = new Map<string, StructureDefinition>();
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    for (const e of r4Bundle(file).entry ?? []) {
      const sd = e.resource as StructureDefinition;
      if (sd.resourceType === 'StructureDefinition') base.set(sd.url, sd);
    }
  }
  const profiles = new Map<string, Profile>();
  const resources = parsed.map((r) => {
    if (r.resourceType !== 'StructureDefinition') return r;
    try {
      const definition: StructureDefinition = { ...r, snapshot: { element: generateSnapshot(r, base) } };
      profiles.set(r.url, { definition, rules: compile(definition, valueSets, profiles) });
      return definition;
    } catch (err) {
      throw new Error(`fhir-profiles: ${r.url}: ${(err as Error).message}`, { cause: err });
    }
  });
  for (const { definition } of profiles.values()) {
    for (const url of extensionProfiles(definition)) if (!profiles.has(url)) throw new Error(`fhir-profiles: ${definition.url}: unknown extension definition ${url}`);
  }
  return { profiles, resources };
}

// --- terminology -------------------------------------------------------------------------------

/** Vigil's value sets as `system|code` sets; only whole Vigil code systems and enumerated concepts. */
function expandValueSets(resources: readonly Conformance[]): Map<string, Set<string>> {
  const codeSystems = new Map(resources.filter((r): r is CodeSystem => r.resourceType === 'CodeSystem').map((cs) => [cs.url, cs]));
  const expansions = new Map<string, Set<string>>();
  for (const vs of resources.filter((r): r is ValueSet => r.resourceType === 'ValueSet')) {
    const codes = new Set<string>();
    for (const include of vs.compose?.include ?? []) {
      const concepts = include.concept ?? flatten(codeSystems.get(include.system ?? '')?.concept);
      if (include.filter || include.valueSet || !concepts?.length) throw new Error(`fhir-profiles: ${vs.url}: an include must list concepts or name a Vigil CodeSystem`);
      for (const c of concepts) codes.add(`${include.system}|${c.code}`);
    }
    expansions.set(vs.url as string, codes);
  }
  return expansions;
}

function flatten(concepts: CodeSystemConcept[] | undefined): CodeSystemConcept[] | undefined {
  return concepts?.flatMap((c) => [c, ...(flatten(c.concept) ?? [])]);
}

// --- snapshot ----------------------------------------------------------------------------------

/**
 * The base snapshot with the differential applied: each differential element is merged over the
 * element of the same id, after creating it when absent, as a slice of its sliced element or as
 * a child of a complex type (Quantity, Period…) that the base does not unfold.
 */
function generateSnapshot(sd: StructureDefinition, base: ReadonlyMap<string, StructureDefinition>): ElementDefinition[] {
  const elements = structuredClone(base.get(sd.baseDefinition ?? '')?.snapshot?.element);
  if (!elements) throw new Error(`unknown base ${sd.baseDefinition}`);
  for (const diff of sd.differential?.element ?? []) {
    let index = elements.findIndex((e) => e.id === diff.id);
    if (index < 0) index = diff.sliceName ? addSlice(elements, diff) : unfoldParent(elements, diff, base);
    if (index < 0) throw new Error(`no element ${diff.id} in ${sd.baseDefinition}`);
    const { constraint, ...changes } = diff;
    const merged = { ...elements[index], ...changes };
    if (constraint) merged.constraint = [...(elements[index].constraint ?? []), ...constraint.map((c) => ({ ...c, source: sd.url }))];
    elements[index] = merged;
  }
  return elements;
}

function addSlice(elements: ElementDefinition[], diff: ElementDefinition): number {
  const slicedId = (diff.id as string).slice(0, -(diff.sliceName as string).length - 1);
  const sliced = elements.find((e) => e.id === slicedId);
  if (!sliced) return -1;
  const { slicing: _, ...slice } = structuredClone(sliced);
  // Slices follow the sliced element's children and the slices before them.
  const at = elements.findLastIndex((e) => e.id === slicedId || e.id?.startsWith(`${slicedId}.`) || e.id?.startsWith(`${slicedId}:`)) + 1;
  elements.splice(at, 0, { ...slice, id: diff.id, sliceName: diff.sliceName });
  return at;
}

function unfoldParent(elements: ElementDefinition[], diff: ElementDefinition, base: ReadonlyMap<string, StructureDefinition>): number {
  const id = diff.id as string;
  const parentIndex = elements.findIndex((e) => e.id === id.slice(0, id.lastIndexOf('.')));
  const parent = elements[parentIndex];
  const type = parent?.type?.length === 1 ? base.get(HL7_SD + parent.type[0].code) : undefined;
  const [root, ...children] = type?.snapshot?.element ?? [];
  if (!root || children.length === 0) return -1;
  const rebase = (text: string | undefined, prefix: string | undefined): string => `${prefix}${(text as string).slice((root.path as string).length)}`;
  elements.splice(parentIndex + 1, 0, ...structuredClone(children).map((c) => ({ ...c, id: rebase(c.id, parent.id), path: rebase(c.path, parent.path) })));
  return elements.findIndex((e) => e.id === id);
}

// --- compiled checks ---------------------------------------------------------------------------

/** A value in the resource, with the FHIRPath that locates it and its FHIR type. */
interface Node {
  readonly value: unknown;
  readonly path: string;
  readonly type: string;
}

/** One element of an element id (`category:VSCat`, `value[x]`): how to reach its values from the parent. */
interface Step {
  readonly name: string;
  readonly choice: boolean;
  /** The types a choice element allows, by their JSON suffix (`Quantity`, `DateTime`). */
  readonly typeBySuffix: ReadonlyMap<string, string>;
  readonly allowed: ReadonlySet<string>;
  readonly type: string;
  readonly slice?: (value: unknown) => boolean;
}

type Rule = (root: Node, issues: OperationOutcomeIssue[]) => void;
type Check = (node: Node, root: Node) => [OperationOutcomeIssue['code'], string] | undefined;

function compile(sd: StructureDefinition, valueSets: ReadonlyMap<string, Set<string>>, profiles: ReadonlyMap<string, Profile>): Rule[] {
  const snapshot = new Map((sd.snapshot?.element ?? []).map((e) => [e.id as string, e]));
  const steps = new Map<string, Step>();
  const stepFor = (id: string): Step => {
    let step = steps.get(id);
    if (!step) {
      step = makeStep(id, snapshot);
      steps.set(id, step);
    }
    return step;
  };
  return (sd.differential?.element ?? []).map((diff) => {
    const id = diff.id as string;
    const ids = id.split('.').map((_, i, parts) => parts.slice(0, i + 1).join('.')).slice(1);
    const path = ids.map(stepFor);
    const element = snapshot.get(id) as ElementDefinition;
    return rule(sd.id as string, path.slice(0, -1), path.at(-1), element, diff, checksFor(diff, element, path.at(-1), valueSets, profiles));
  });
}

function makeStep(id: string, snapshot: ReadonlyMap<string, ElementDefinition>): Step {
  const element = snapshot.get(id) as ElementDefinition;
  const [raw, sliceName] = id.slice(id.lastIndexOf('.') + 1).split(':');
  const choice = raw.endsWith('[x]');
  const types = element.type ?? [];
  return {
    name: choice ? raw.slice(0, -3) : raw,
    choice,
    typeBySuffix: new Map(choice ? types.map((t) => [capitalize(t.code as string), t.code as string]) : []),
    allowed: new Set(types.map((t) => t.code as string)),
    type: getElementDefinitionTypeName(element),
    slice: sliceName ? slicePredicate(id, element, snapshot) : undefined,
  };
}

/**
 * Pattern slices on `$this` (an item belongs to the slice when it matches the slice's pattern), and
 * extensions sliced by `url` (the slice's fixed url, or the url of the extension definition it is typed with).
 */
function slicePredicate(id: string, slice: ElementDefinition, snapshot: ReadonlyMap<string, ElementDefinition>): (value: unknown) => boolean {
  const sliced = snapshot.get(id.slice(0, id.lastIndexOf(':')));
  const discriminators = sliced?.slicing?.discriminator ?? [];
  if (discriminators.length === 1 && discriminators[0].type === 'value' && discriminators[0].path === 'url') {
    const url = snapshot.get(`${id}.url`)?.fixedUri ?? (slice.type?.length === 1 ? slice.type[0].profile?.[0] : undefined);
    if (!url) throw new Error(`slice ${id}: an extension slice needs a fixed url or an extension definition`);
    return (value) => (value as { url?: unknown }).url === url;
  }
  const pattern = valueOf(slice, 'pattern');
  if (!discriminators.length || discriminators.some((d) => d.path !== '$this' || d.type !== 'pattern') || pattern === undefined) {
    throw new Error(`slice ${id}: only pattern slicing on $this and extension slicing by url are supported`);
  }
  return (value) => deepIncludes(value, pattern);
}

/** `fixed[x]` / `pattern[x]` of an element, whatever its type. */
function valueOf(element: ElementDefinition, prefix: 'fixed' | 'pattern'): unknown {
  return Object.entries(element).find(([k]) => k.startsWith(prefix))?.[1];
}

function rule(profile: string, parentPath: Step[], step: Step | undefined, element: ElementDefinition, diff: ElementDefinition, checks: Check[]): Rule {
  const min = diff.min ?? 0;
  const max = diff.max === undefined || diff.max === '*' ? Infinity : Number(diff.max);
  // A slice's name alone says little: its short description says what it is.
  const name = `${step?.name}${diff.sliceName ? `:${diff.sliceName} (${element.short})` : ''}`;
  return (root, issues) => {
    for (const parent of nodesAt(root, parentPath)) {
      const nodes = step ? children(parent, step) : [parent];
      const where = `${parent.path}.${step?.name}`;
      if (nodes.length < min) {
        issues.push(error('required', `Profile ${profile} requires ${parent.path}.${name}: min ${min}, found ${nodes.length}`, where));
      }
      if (nodes.length > max) {
        issues.push(error('structure', `Profile ${profile} allows at most ${max} ${parent.path}.${name}, found ${nodes.length}`, where));
      }
      for (const node of nodes) {
        for (const check of checks) {
          const failure = check(node, root);
          if (failure) issues.push(error(failure[0], `Profile ${profile}: ${failure[1]}`, node.path));
        }
      }
    }
  };
}

function nodesAt(root: Node, path: readonly Step[]): Node[] {
  // A value of a type the profile does not allow gets its own error, not one per missing child.
  return path.reduce<Node[]>((nodes, step) => nodes.flatMap((n) => children(n, step)).filter((n) => !step.choice || step.allowed.has(n.type)), [root]);
}

function children(parent: Node, step: Step): Node[] {
  if (!parent.value || typeof parent.value !== 'object') return [];
  const object = parent.value as Record<string, unknown>;
  const key = step.choice
    ? Object.keys(object).find((k) => k.startsWith(step.name) && /^[A-Z]/.test(k.slice(step.name.length)) && object[k] !== undefined)
    : step.name;
  const value = key === undefined ? undefined : object[key];
  if (value === undefined) return [];
  const suffix = (key as string).slice(step.name.length);
  const type = step.choice ? (step.typeBySuffix.get(suffix) ?? suffix) : step.type;
  const nodes = Array.isArray(value)
    ? value.map((v, i) => ({ value: v as unknown, path: `${parent.path}.${key}[${i}]`, type }))
    : [{ value, path: `${parent.path}.${key}`, type }];
  return step.slice ? nodes.filter((n) => step.slice?.(n.value)) : nodes;
}

function checksFor(diff: ElementDefinition, element: ElementDefinition, step: Step | undefined, valueSets: ReadonlyMap<string, Set<string>>, profiles: ReadonlyMap<string, Profile>): Check[] {
  const checks: Check[] = [];
  if (diff.type && step?.choice) {
    const { allowed } = step;
    checks.push((node) => (allowed.has(node.type) ? undefined : ['structure', `${node.path} must be ${[...allowed].join(' or ')}`]));
  }
  for (const type of diff.type ?? []) {
    if (type.profile) checks.push(extensionCheck(diff.id as string, type.code, type.profile, profiles));
    if (type.targetProfile) checks.push(referenceCheck(diff.id as string, type.targetProfile));
  }
  const fixed = valueOf(diff, 'fixed');
  if (fixed !== undefined) checks.push((node) => (deepEquals(node.value, fixed) ? undefined : ['value', `${node.path} must be ${JSON.stringify(fixed)}`]));
  const pattern = valueOf(diff, 'pattern');
  if (pattern !== undefined && !diff.sliceName) {
    checks.push((node) => (deepIncludes(node.value, pattern) ? undefined : ['value', `${node.path} must match ${JSON.stringify(pattern)}`]));
  }
  if (diff.binding?.strength === 'required') checks.push(bindingCheck(element, valueSets));
  for (const c of diff.constraint ?? []) {
    // Warnings do not make a resource invalid; Vigil's profiles state only errors.
    if (c.severity === 'error') checks.push(invariantCheck(c.key as string, c.human as string, c.expression as string));
  }
  return checks;
}

/** The extension definitions a profile types its elements with (checked to exist at load time). */
function extensionProfiles(sd: StructureDefinition): string[] {
  return (sd.differential?.element ?? []).flatMap((e) => e.type ?? []).flatMap((t) => t.profile ?? []);
}

/** An element typed with one of Vigil's extension definitions: that definition's rules, applied from the extension itself. */
function extensionCheck(id: string, code: string, urls: string[], profiles: ReadonlyMap<string, Profile>): Check {
  if (code !== 'Extension' || urls.length !== 1) throw new Error(`${id}: only Extension elements may name a profile, and only one`);
  const url = canonical(urls[0]);
  return (node) => {
    const issues: OperationOutcomeIssue[] = [];
    for (const rule of (profiles.get(url) as Profile).rules) rule(node, issues);
    return issues.length ? [issues[0].code, issues.map((i) => i.diagnostics).join('; ')] : undefined;
  };
}

const LITERAL_REFERENCE = /(?:^|\/)([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
const CONDITIONAL_REFERENCE = /^([A-Z][A-Za-z]+)\?/;

/**
 * A reference's target type comes from the literal reference (relative, absolute, conditional or
 * to a contained resource), else from Reference.type. A reference that names no type (a bare
 * identifier, a display, an unresolved urn:uuid) cannot be shown to meet the profile, so it fails.
 */
function referenceCheck(id: string, targetProfiles: string[]): Check {
  const targets = targetProfiles.map((p) => {
    if (!p.startsWith(HL7_SD)) throw new Error(`${id}: only base resource types are supported as reference targets`);
    return p.slice(HL7_SD.length);
  });
  const expected = targets.join(' or ');
  return (node, root) => {
    const ref = node.value as Reference;
    const literal = ref.reference;
    const type = literal?.startsWith('#')
      ? (root.value as { contained?: Resource[] }).contained?.find((r) => r.id === literal.slice(1))?.resourceType
      : ((literal && (LITERAL_REFERENCE.exec(literal) ?? CONDITIONAL_REFERENCE.exec(literal))?.[1]) ?? ref.type);
    if (type && targets.includes(type)) return undefined;
    return ['structure', type ? `${node.path} must reference a ${expected}, not a ${type}` : `${node.path} must reference a ${expected}; give a literal reference or Reference.type`];
  };
}

function bindingCheck(element: ElementDefinition, valueSets: ReadonlyMap<string, Set<string>>): Check {
  const url = canonical(element.binding?.valueSet ?? '');
  const codes = valueSets.get(url);
  const type = element.type?.[0]?.code;
  if (!codes || (type !== 'CodeableConcept' && type !== 'Coding')) throw new Error(`${element.id}: required bindings must be on a CodeableConcept or Coding, to a Vigil ValueSet`);
  return (node) => {
    const value = node.value as { coding?: { system?: string; code?: string }[]; system?: string; code?: string };
    const codings = type === 'Coding' ? [value] : (value.coding ?? []);
    return codings.some((c) => codes.has(`${c.system}|${c.code}`)) ? undefined : ['code-invalid', `${node.path} has no code from the required value set ${url}`];
  };
}

function invariantCheck(key: string, human: string, expression: string): Check {
  const atom = parseFhirPath(expression);
  return (node, root) => {
    const context: TypedValue = { type: node.type, value: node.value };
    try {
      const result = evalFhirPathTyped(atom, [context], { '%resource': root, '%context': context });
      if (result.length === 1 && result[0].value === true) return undefined;
      return ['invariant', `${key}: ${human}`];
    } catch (err) {
      // Invalid data can make FHIRPath throw; the resource then does not meet the invariant.
      return ['invariant', `${key}: ${human} (${(err as Error).message})`];
    }
  };
}
