import type { Observation } from '@medplum/fhirtypes';
import { clearAlerts, raiseAlert, retractAlerts } from '../alerts/alerts.ts';
import { ALERT_DEFAULTS } from '../alerts/codes.ts';
import { patientOf } from '../runtime/host.ts';
import { numberParameter, type Bot, type BotResult, type FhirClient } from '../runtime/manifest.ts';
import { effectiveTime } from '../vitals/normalise.ts';
import { isMonitored } from '../vitals/recency.ts';
import { activeRules, inScope, ruleContext, unusable } from './context.ts';
import { evaluateRule } from './evaluate.ts';
import { ruleWatches, type AlertRule } from './rule.ts';

/** How long the rules in force are reused to decide which Observations concern them: a new rule takes effect within this. */
const RULES_TTL_MS = 5_000;
const cached = new WeakMap<FhirClient, { until: number; rules: Promise<AlertRule[]> }>();

function rulesInForce(fhir: FhirClient): Promise<AlertRule[]> {
  const hit = cached.get(fhir);
  if (hit && hit.until > Date.now()) return hit.rules;
  const rules = activeRules(fhir);
  cached.set(fhir, { until: Date.now() + RULES_TTL_MS, rules });
  rules.catch(() => cached.delete(fhir));
  return rules;
}

/**
 * Custom rules (bots/README.md): organisations' own alert rules, written as PlanDefinitions with
 * FHIRPath conditions, run on every Observation they are about. One Flag per patient and rule.
 */
export const rulesBot: Bot = {
  name: 'rules',
  title: 'Vigil custom rules',
  trigger: {
    resourceType: 'Observation',
    async accepts(resource, fhir) {
      if (!isMonitored(resource)) return false;
      const rules = await rulesInForce(fhir);
      return rules.some((r) => ruleWatches(r, (resource as Observation).code?.coding));
    },
  },
  // the rules (PlanDefinition), the patient and readings they are evaluated on, their CareTeam scope; alerts and retractions
  scopes: ['system/PlanDefinition.s', 'system/Patient.r', 'system/Observation.s', 'system/CareTeam.s', 'system/Flag.cus', 'system/Communication.cus'],
  timeoutMs: 10_000,
  defaults: { recentMinutes: 1440, ...ALERT_DEFAULTS },

  async handler(event, fhir): Promise<BotResult> {
    const observation = event.resource as Observation;
    const patientId = patientOf(observation);
    if (!patientId) return { outcome: 'skipped', message: 'the Observation is not about a Patient' };
    if (observation.status === 'entered-in-error') {
      const flags = await retractAlerts(fhir, event, patientId, observation.id as string);
      return { outcome: 'success', message: `entered in error: retracted ${flags.length} alert(s)` };
    }
    const reason = unusable(observation);
    if (reason) return { outcome: 'rejected', message: reason };
    const at = new Date(effectiveTime(observation) as number).toISOString();

    const rules = (await activeRules(fhir)).filter((r) => ruleWatches(r, observation.code?.coding) && r.interactions.has(event.interaction as 'create' | 'update'));
    const context = await ruleContext(fhir, observation, patientId, numberParameter(event.parameters, 'recentMinutes'));
    const notes: string[] = [];
    for (const rule of rules) {
      if (!(await inScope(fhir, rule, patientId))) continue;
      const outcome = evaluateRule(rule, context);
      const key = `rule-${rule.id}`;
      const failed = outcome.conditions.find((c) => c.error);
      if (failed) {
        // Neither fired nor clear: the rule could not be judged on this reading.
        notes.push(`${rule.title}: ${failed.path} failed: ${failed.error}`);
        continue;
      }
      if (!outcome.fires) {
        await clearAlerts(fhir, event, patientId, [key], at);
        notes.push(`${rule.title}: not met`);
        continue;
      }
      const alert = await raiseAlert(fhir, event, {
        patientId,
        rule: key,
        code: rule.code,
        codings: rule.codings,
        label: rule.title,
        priority: rule.priority,
        evidence: [observation, context.previous].flatMap((o) => (o ? [{ reference: `Observation/${o.id}` }] : [])),
        text: `${rule.text} (${describe(observation)})`,
        at,
      });
      notes.push(`${rule.title}: alert ${alert.action}, care team ${alert.notice}`);
    }
    return { outcome: 'success', message: notes.join('; ') || 'no rule in force for this patient' };
  },
};

/** The reading in a few words: `Heart rate 131 /min at 2026-03-10T08:00:00Z`. */
function describe(o: Observation): string {
  const what = o.code?.text ?? o.code?.coding?.find((c) => c.display)?.display ?? o.code?.coding?.[0]?.code ?? 'Observation';
  const q = o.valueQuantity;
  const value = q ? `${q.value} ${q.unit ?? q.code ?? ''}`.trim() : (o.valueCodeableConcept?.text ?? o.valueCodeableConcept?.coding?.[0]?.display ?? o.valueString ?? '');
  const when = o.effectiveDateTime ?? o.effectiveInstant ?? o.effectivePeriod?.end ?? '';
  return [`${what} ${value}`.trim(), when && `at ${when}`].filter(Boolean).join(' ');
}
