import { normalizeOperationOutcome, type MedplumClient } from '@medplum/core';
import type { Observation, OperationOutcome, Parameters, ParametersParameter, PlanDefinition, PlanDefinitionAction } from '@medplum/fhirtypes';
import type { Priority } from './alerts.ts';
import { LOINC } from './vitals.ts';

/** A custom alert rule is a PlanDefinition claiming this profile (bots/README.md, custom rules). */
export const RULE_PROFILE = 'https://vigil.health/fhir/StructureDefinition/vigil-alert-rule';
export const SCOPE_URL = 'https://vigil.health/fhir/StructureDefinition/alert-rule-scope';
const PLAN_TYPE = 'http://terminology.hl7.org/CodeSystem/plan-definition-type';

/** What a rule may watch: the LOINC codes of the readings that trigger it (blood pressure arrives as the panel). */
export const MEASURES = [
  { key: 'pulse', label: 'Pulse', codes: ['8867-4'] },
  { key: 'spo2', label: 'SpO₂', codes: ['2708-6', '59408-5'] },
  { key: 'bp', label: 'Blood pressure', codes: ['85354-9'] },
  { key: 'resp', label: 'Resp. rate', codes: ['9279-1'] },
  { key: 'temp', label: 'Temperature', codes: ['8310-5'] },
  { key: 'weight', label: 'Weight', codes: ['29463-7'] },
] as const;

export type ScopeKind = 'everyone' | 'Patient' | 'CareTeam';

/** The parts of a rule the editor changes; everything else of a stored rule is kept as it was. */
export interface RuleForm {
  title: string;
  /** Measure keys (MEASURES). */
  measures: string[];
  conditions: string[];
  priority: Priority;
  text: string;
  scopeKind: ScopeKind;
  /** `Patient/…` or `CareTeam/…` references, of the kind chosen. */
  scope: string[];
}

export const EMPTY_RULE: RuleForm = { title: '', measures: [], conditions: [''], priority: 'urgent', text: '', scopeKind: 'everyone', scope: [] };

export const CONDITION_PATH = (i: number): string => `PlanDefinition.action[0].condition[${i}].expression.expression`;

export function formOf(plan: PlanDefinition): RuleForm {
  const action = plan.action?.[0];
  const codes = new Set((action?.trigger?.[0]?.data?.[0]?.codeFilter?.[0]?.code ?? []).filter((c) => c.system === LOINC).map((c) => c.code));
  const scope = scopeOf(plan);
  const scopeKind: ScopeKind = scope[0]?.startsWith('CareTeam/') ? 'CareTeam' : scope.length ? 'Patient' : 'everyone';
  return {
    title: plan.title ?? '',
    measures: MEASURES.filter((m) => m.codes.some((c) => codes.has(c))).map((m) => m.key),
    conditions: action?.condition?.map((c) => c.expression?.expression ?? '') ?? [''],
    priority: (action?.priority as Priority | undefined) ?? 'urgent',
    text: action?.description ?? '',
    scopeKind,
    scope: scope.filter((s) => s.startsWith(`${scopeKind}/`)),
  };
}

/** The PlanDefinition the form states, on top of the stored one (its id, version and other parts kept). */
export function planOf(form: RuleForm, status: PlanDefinition['status'], base?: PlanDefinition): PlanDefinition {
  const action: PlanDefinitionAction = base?.action?.[0] ?? {};
  const codes = MEASURES.filter((m) => form.measures.includes(m.key)).flatMap((m) => m.codes.map((code) => ({ system: LOINC, code })));
  const trigger = action.trigger?.[0]?.type ?? 'data-added';
  return {
    ...base,
    resourceType: 'PlanDefinition',
    meta: { ...base?.meta, profile: [...new Set([...(base?.meta?.profile ?? []), RULE_PROFILE])] },
    status,
    title: form.title.trim(),
    type: { coding: [{ system: PLAN_TYPE, code: 'eca-rule' }] },
    extension: [
      ...(base?.extension ?? []).filter((e) => e.url !== SCOPE_URL),
      ...(form.scopeKind === 'everyone' ? [] : form.scope.map((reference) => ({ url: SCOPE_URL, valueReference: { reference } }))),
    ],
    action: [{
      ...action,
      description: form.text.trim(),
      priority: form.priority,
      // no codes: the rule sees every Observation
      trigger: codes.length ? [{ type: trigger, data: [{ type: 'Observation', codeFilter: [{ path: 'code', code: codes }] }] }] : undefined,
      condition: form.conditions.map((expression) => ({ kind: 'applicability', expression: { language: 'text/fhirpath', expression } })),
    }],
  };
}

export const scopeOf = (plan: PlanDefinition): string[] =>
  (plan.extension ?? []).filter((e) => e.url === SCOPE_URL).flatMap((e) => (e.valueReference?.reference ? [e.valueReference.reference] : []));

/** The alert code a rule raises: its own code, or Vigil's generic one. */
export const alertCodeOf = (plan: PlanDefinition): string => plan.action?.[0]?.code?.[0]?.coding?.[0]?.code ?? 'custom-rule';

export const measuresOf = (plan: PlanDefinition): string[] => formOf(plan).measures.map((k) => MEASURES.find((m) => m.key === k)?.label ?? k);

export function loadRules(medplum: MedplumClient): Promise<PlanDefinition[]> {
  return medplum
    .searchResources('PlanDefinition', { _profile: RULE_PROFILE, _count: 200, _sort: 'title' }, { cache: 'no-cache' })
    .then((found) => [...found]);
}

export function saveRule(medplum: MedplumClient, plan: PlanDefinition): Promise<PlanDefinition> {
  return plan.id ? medplum.updateResource(plan) : medplum.createResource(plan);
}

export interface ReadingVerdict {
  observation: string;
  /** What the reading says, e.g. `84 %` or `150/95 mmHg`. */
  value?: string;
  effective?: string;
  fires: boolean;
  skipped?: string;
  conditions: { path: string; met: boolean; result?: string; error?: string }[];
}

export interface Verdict {
  fires: boolean;
  inScope: boolean;
  summary: string;
  readings: ReadingVerdict[];
}

const part = (parts: ParametersParameter[] | undefined, name: string) => parts?.find((p) => p.name === name);

/** PlanDefinition/$evaluate-rule: would the rule (saved or not) fire on the patient's recent readings, and why. */
export async function evaluateRule(medplum: MedplumClient, plan: PlanDefinition, patientId: string): Promise<Verdict> {
  const input: Parameters = {
    resourceType: 'Parameters',
    parameter: [{ name: 'rule', resource: plan }, { name: 'patient', valueReference: { reference: `Patient/${patientId}` } }],
  };
  const out = (await medplum.post(medplum.fhirUrl('PlanDefinition', '$evaluate-rule'), input)) as Parameters;
  const p = out.parameter;
  const readings = (p ?? []).filter((x) => x.name === 'reading').map(({ part: r }) => part(r, 'observation')?.valueReference?.reference?.split('/')[1] ?? '');
  // the operation names the readings; their values make its verdict readable
  const values = new Map(
    readings.length
      ? (await medplum.searchResources('Observation', { _id: readings.join(','), _count: readings.length })).map((o) => [`Observation/${o.id}`, valueText(o)])
      : [],
  );
  return {
    fires: part(p, 'fires')?.valueBoolean ?? false,
    inScope: part(p, 'inScope')?.valueBoolean ?? false,
    summary: part(p, 'summary')?.valueString ?? '',
    readings: (p ?? []).filter((x) => x.name === 'reading').map(({ part: r }) => ({
      observation: part(r, 'observation')?.valueReference?.reference ?? '',
      value: values.get(part(r, 'observation')?.valueReference?.reference ?? ''),
      effective: part(r, 'effective')?.valueDateTime,
      fires: part(r, 'fires')?.valueBoolean ?? false,
      skipped: part(r, 'skipped')?.valueString,
      conditions: (r ?? []).filter((x) => x.name === 'condition').map(({ part: c }) => ({
        path: part(c, 'path')?.valueString ?? '',
        met: part(c, 'met')?.valueBoolean ?? false,
        result: part(c, 'result')?.valueString,
        error: part(c, 'error')?.valueString,
      })),
    })),
  };
}

function valueText(o: Observation): string | undefined {
  const q = o.valueQuantity ?? o.component?.[0]?.valueQuantity;
  if (!q) return undefined;
  const values = o.valueQuantity ? [q.value] : (o.component ?? []).map((c) => c.valueQuantity?.value);
  return `${values.join('/')} ${q.unit ?? q.code ?? ''}`.trim();
}

/** A refusal's issues by the path they name (a bad condition, a bad scope), and those naming none. */
export function issuesByPath(error: unknown): { byPath: Map<string, string>; general: string[] } {
  const outcome: OperationOutcome = normalizeOperationOutcome(error);
  const byPath = new Map<string, string>();
  const general: string[] = [];
  for (const issue of outcome.issue ?? []) {
    const text = issue.diagnostics ?? issue.details?.text ?? 'Refused';
    const path = issue.expression?.[0];
    if (path && !byPath.has(path)) byPath.set(path, text);
    else general.push(text);
  }
  return { byPath, general };
}
