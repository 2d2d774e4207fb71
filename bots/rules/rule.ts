import type { Coding, OperationOutcomeIssue, PlanDefinition } from '@medplum/fhirtypes';
import { ALERT_DISPLAY, ALERT_SYSTEM, type AlertCode, type Priority } from '../alerts/codes.ts';
import { compileCondition } from './evaluate.ts';

/** A custom alert rule is a PlanDefinition claiming this profile (fhir-profiles/StructureDefinition-vigil-alert-rule.json). */
export const RULE_PROFILE = 'https://vigil.health/fhir/StructureDefinition/vigil-alert-rule';
export const SCOPE_URL = 'https://vigil.health/fhir/StructureDefinition/alert-rule-scope';
export const ECA_RULE = 'http://terminology.hl7.org/CodeSystem/plan-definition-type|eca-rule';

export interface Condition {
  expression: string;
  /** Where it is in the PlanDefinition, for answers that name it. */
  path: string;
}

/** A rule as the bot runs it, read from a PlanDefinition that conforms to the profile. */
export interface AlertRule {
  id?: string;
  title: string;
  active: boolean;
  /** `system|code` of the Observations it is about; empty: every Observation. */
  codes: string[];
  /** Which changes: created Observations, updated ones, or both. */
  interactions: ReadonlySet<'create' | 'update'>;
  conditions: Condition[];
  code: AlertCode;
  /** The rule's own alert coding, beside `custom-rule`. */
  codings: Coding[];
  priority: Priority;
  text: string;
  /** `Patient/…` and `CareTeam/…`; empty: every patient. */
  scope: string[];
}

export const isRuleProfile = (url: string): boolean => url.split('|')[0] === RULE_PROFILE;
export const claimsRuleProfile = (p: PlanDefinition): boolean => p.meta?.profile?.some(isRuleProfile) ?? false;

/**
 * What the profile cannot check: every condition must compile (and run on an empty Observation, so
 * that unknown functions and variables are caught now, not when a reading arrives), and each scope
 * must be a literal Patient or CareTeam reference the rule can be matched on.
 */
export function ruleIssues(p: PlanDefinition): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  for (const { expression, path } of conditionsOf(p)) {
    const error = compileCondition(expression).error;
    if (error) issues.push({ severity: 'error', code: 'invalid', diagnostics: `Invalid FHIRPath "${expression}": ${error}`, expression: [path] });
  }
  for (const [i, ext] of (p.extension ?? []).entries()) {
    if (ext.url !== SCOPE_URL) continue;
    if (!/^(Patient|CareTeam)\/[A-Za-z0-9\-.]{1,64}$/.test(ext.valueReference?.reference ?? '')) {
      issues.push({ severity: 'error', code: 'invalid', diagnostics: 'A rule scope must be a literal reference to a Patient or a CareTeam (Patient/123)', expression: [`PlanDefinition.extension[${i}].valueReference`] });
    }
  }
  return issues;
}

function conditionsOf(p: PlanDefinition): Condition[] {
  return (p.action ?? []).flatMap((a, i) =>
    (a.condition ?? []).flatMap((c, j) =>
      c.expression?.expression === undefined ? [] : [{ expression: c.expression.expression, path: `PlanDefinition.action[${i}].condition[${j}].expression.expression` }],
    ),
  );
}

const TRIGGER_INTERACTIONS: Record<string, ('create' | 'update')[]> = {
  'data-added': ['create'],
  'data-modified': ['update'],
  'data-changed': ['create', 'update'],
};

/** The rule a valid PlanDefinition states (ruleIssues and the profile have passed). */
export function readRule(p: PlanDefinition): AlertRule {
  const action = p.action?.[0] ?? {};
  const trigger = action.trigger?.[0];
  const own = action.code?.[0]?.coding ?? [];
  const vigil = own.find((c) => c.system === ALERT_SYSTEM && c.code && Object.hasOwn(ALERT_DISPLAY, c.code))?.code as AlertCode | undefined;
  return {
    id: p.id,
    title: p.title ?? p.name ?? 'Custom rule',
    active: p.status === 'active',
    codes: (trigger?.data?.[0]?.codeFilter?.[0]?.code ?? []).map((c) => `${c.system ?? ''}|${c.code ?? ''}`),
    interactions: new Set(trigger ? (TRIGGER_INTERACTIONS[trigger.type] ?? ['create', 'update']) : ['create', 'update']),
    conditions: conditionsOf(p),
    code: vigil ?? 'custom-rule',
    codings: vigil ? [] : own,
    priority: action.priority ?? 'routine',
    text: action.description ?? p.title ?? 'Custom rule',
    scope: (p.extension ?? []).filter((e) => e.url === SCOPE_URL).flatMap((e) => (e.valueReference?.reference ? [e.valueReference.reference] : [])),
  };
}

/** Whether an Observation's code is one the rule is about. */
export function ruleWatches(rule: AlertRule, codings: readonly Coding[] | undefined): boolean {
  return rule.codes.length === 0 || (codings ?? []).some((c) => rule.codes.includes(`${c.system ?? ''}|${c.code ?? ''}`));
}
