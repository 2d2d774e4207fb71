import { r4Bundle } from './r4-bundles.ts';
import type { CodeSystem, CodeSystemConcept, ElementDefinition, OperationOutcomeIssue, Resource, StructureDefinition, ValueSet } from '@medplum/fhirtypes';

/**
 * Required bindings on `code` elements (Patient.gender, Observation.status, ContactPoint.system…),
 * which the structural validator does not check. Value sets are expanded once from the R4
 * definitions; a binding whose value set cannot be expanded locally is not enforced.
 */
interface Rule { path: string[]; codes: ReadonlySet<string>; valueSet: string }

let rulesByType: Map<string, Rule[]> | undefined;

/** Expands the value sets up front (a few hundred ms) so that no request pays for it. */
export function loadRequiredBindings(): void {
  rulesByType ??= buildRules();
}

export function checkRequiredBindings(resource: Resource): OperationOutcomeIssue[] {
  rulesByType ??= buildRules();
  const issues: OperationOutcomeIssue[] = [];
  for (const rule of rulesByType.get(resource.resourceType) ?? []) {
    for (const { value, at } of valuesAt(resource, rule.path, resource.resourceType)) {
      if (typeof value === 'string' && !rule.codes.has(value)) {
        issues.push({
          severity: 'error', code: 'code-invalid',
          diagnostics: `"${value}" is not in the required value set ${rule.valueSet}`,
          expression: [at],
        });
      }
    }
  }
  return issues;
}

function valuesAt(node: unknown, path: string[], at: string): { value: unknown; at: string }[] {
  if (path.length === 0) return [{ value: node, at }];
  if (!node || typeof node !== 'object') return [];
  const [head, ...rest] = path;
  const child = (node as Record<string, unknown>)[head];
  if (child === undefined) return [];
  if (Array.isArray(child)) return child.flatMap((c, i) => valuesAt(c, rest, `${at}.${head}[${i}]`));
  return valuesAt(child, rest, `${at}.${head}`);
}

const DATATYPE_DEPTH = 2;

function buildRules(): Map<string, Rule[]> {
  const valueSets = new Map<string, ValueSet>();
  const codeSystems = new Map<string, CodeSystem>();
  for (const e of r4Bundle('fhir/r4/valuesets.json').entry ?? []) {
    const r = e.resource as ValueSet | CodeSystem;
    if (r.resourceType === 'ValueSet' && r.url) valueSets.set(r.url, r);
    if (r.resourceType === 'CodeSystem' && r.url) codeSystems.set(r.url, r);
  }
  const expansions = new Map<string, Set<string> | undefined>();
  const expand = (url: string): Set<string> | undefined => {
    const key = url.split('|')[0];
    if (!expansions.has(key)) expansions.set(key, expandValueSet(valueSets.get(key), codeSystems));
    return expansions.get(key);
  };

  const definitions = new Map<string, StructureDefinition>();
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    for (const e of r4Bundle(file).entry ?? []) {
      const sd = e.resource as StructureDefinition;
      if (sd.resourceType === 'StructureDefinition' && sd.type && !sd.url?.includes('/extension-')) definitions.set(sd.type, sd);
    }
  }
  const rulesFor = (type: string, prefix: string[], depth: number): Rule[] => {
    const sd = definitions.get(type);
    const out: Rule[] = [];
    for (const el of sd?.snapshot?.element ?? []) {
      const rel = (el.path ?? '').split('.').slice(1);
      if (rel.length === 0 || rel.some((p) => p.endsWith('[x]') || p === 'extension' || p === 'modifierExtension')) continue;
      const codes = el.type?.length === 1 ? el.type[0].code : undefined;
      if (codes === 'code' && el.binding?.strength === 'required' && el.binding.valueSet) {
        const set = expand(el.binding.valueSet);
        if (set) out.push({ path: [...prefix, ...rel], codes: set, valueSet: el.binding.valueSet.split('|')[0] });
      } else if (codes && depth > 0 && isComplexDatatype(codes, el)) {
        out.push(...rulesFor(codes, [...prefix, ...rel], depth - 1));
      }
    }
    return out;
  };
  const rules = new Map<string, Rule[]>();
  for (const [type, sd] of definitions) {
    if (sd.kind === 'resource' && !sd.abstract) rules.set(type, rulesFor(type, [], DATATYPE_DEPTH));
  }
  return rules;
}

function isComplexDatatype(code: string, el: ElementDefinition): boolean {
  return /^[A-Z]/.test(code) && code !== 'Extension' && code !== 'Resource' && code !== 'BackboneElement' && code !== 'Element' && !el.contentReference;
}

function expandValueSet(vs: ValueSet | undefined, codeSystems: Map<string, CodeSystem>): Set<string> | undefined {
  if (!vs?.compose?.include?.length || vs.compose.exclude?.length) return undefined;
  const codes = new Set<string>();
  for (const inc of vs.compose.include) {
    if (inc.filter?.length || inc.valueSet?.length || !inc.system) return undefined;
    if (inc.concept?.length) {
      for (const c of inc.concept) codes.add(c.code as string);
      continue;
    }
    const cs = codeSystems.get(inc.system);
    if (!cs?.concept?.length || cs.content !== 'complete') return undefined;
    const walk = (concepts: CodeSystemConcept[]): void => {
      for (const c of concepts) {
        codes.add(c.code as string);
        if (c.concept) walk(c.concept);
      }
    };
    walk(cs.concept);
  }
  return codes;
}
