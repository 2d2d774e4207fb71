import type { Request, Response } from 'express';
import type { Observation, Parameters, ParametersParameter, Patient, PlanDefinition, Resource } from '@medplum/fhirtypes';
import { inScope, ruleContext, unusable, USABLE } from '../../../../bots/rules/context.ts';
import { evaluateRule as evaluate, type RuleOutcome } from '../../../../bots/rules/evaluate.ts';
import { readRule, RULE_PROFILE } from '../../../../bots/rules/rule.ts';
import { rulesBot } from '../../../../bots/rules/bot.ts';
import { type FhirClient, numberParameter } from '../../../../bots/runtime/manifest.ts';
import { resolveSettings } from '../../../../bots/runtime/settings.ts';
import { effectiveTime } from '../../../../bots/vitals/normalise.ts';
import { storeClient } from '../../bots.ts';
import type { Restriction } from '../../store/search/execute.ts';
import { validationIssues } from '../../store/validation.ts';
import { type FhirContext, searchParams } from '../context.ts';
import { FhirError, badRequest } from '../outcome.ts';
import { sendJson } from '../respond.ts';
import { checkKnown, single } from './parameters.ts';

/** The newest readings a rule is tried on. */
const MAX_READINGS = 50;

/**
 * PlanDefinition/$evaluate-rule (Vigil): would this custom alert rule fire on the patient's recent
 * data, and why? Input: `rule` (the PlanDefinition itself, e.g. a draft, or a reference to a
 * stored one) and `patient` (a reference, or an id); GET takes both as references in the query.
 * The rule is validated as a save would (400 naming what is wrong), then tried on each of the
 * patient's newest readings it watches within the rules bot's `recentMinutes`, as if each had just
 * arrived. Nothing is written. A user's token reads the rule and the patient's data through its
 * restriction, so a clinician tries rules on their care teams' patients only.
 */
export const evaluateRule = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const input = req.method === 'POST' ? fromBody(req) : fromQuery(req);
  // the patient's data as the caller may see it; the rules bot's settings and the rule's scope as the bot sees them
  const fhir = storeClient(ctx.repo, res.locals.restriction as Restriction | undefined);
  const system = storeClient(ctx.repo);
  const plan = input.rule.resource ?? (await stored(fhir, input.rule.reference as string, input.rule.at));
  const issues = validationIssues(plan, [RULE_PROFILE]);
  if (issues.base.length || issues.profile.length) throw new FhirError(400, [...issues.base, ...issues.profile]);
  const patientId = await patientOf(fhir, input.patient);
  const rule = readRule(plan);
  const recentMinutes = numberParameter((await resolveSettings(system, rulesBot, patientId)).parameters, 'recentMinutes');
  const since = new Date(Date.now() - recentMinutes * 60_000).toISOString();
  const readings = await fhir.search<Observation>('Observation', {
    subject: `Patient/${patientId}`,
    ...(rule.codes.length ? { code: rule.codes.join(',') } : {}),
    date: `ge${since}`,
    status: USABLE,
    _sort: '-date',
    _count: String(MAX_READINGS),
  });
  const results: { reading: Observation; skipped?: string; outcome?: RuleOutcome }[] = [];
  for (const reading of readings) {
    const skipped = unusable(reading);
    results.push(skipped ? { reading, skipped } : { reading, outcome: evaluate(rule, await ruleContext(fhir, reading, patientId, recentMinutes)) });
  }
  const scoped = await inScope(system, rule, patientId);
  const firing = results.filter((r) => r.outcome?.fires);
  const summary = [
    readings.length === 0
      ? `No readings the rule watches in the last ${recentMinutes} min.`
      : `Would fire on ${firing.length} of the ${readings.length} newest readings it watches in the last ${recentMinutes} min.`,
    ...(scoped ? [] : ['The rule does not apply to this patient (scope).']),
    ...(rule.active ? [] : [`The rule is ${plan.status}: only active rules run.`]),
  ].join(' ');
  const out: Parameters = {
    resourceType: 'Parameters',
    parameter: [
      { name: 'fires', valueBoolean: firing.length > 0 },
      { name: 'inScope', valueBoolean: scoped },
      { name: 'active', valueBoolean: rule.active },
      { name: 'evaluated', valueInteger: results.filter((r) => r.outcome).length },
      { name: 'summary', valueString: summary },
      ...results.map(readingPart),
    ],
  };
  sendJson(req, res, 200, out);
};

interface Input {
  rule: { resource?: PlanDefinition; reference?: string; at: string };
  patient: { reference: string; at: string };
}

function fromBody(req: Request): Input {
  const body = req.body as Parameters | undefined;
  if (body?.resourceType !== 'Parameters') throw badRequest('$evaluate-rule takes a Parameters resource as its body', 'resourceType');
  const found: Partial<Input> = {};
  for (const [i, p] of (body.parameter ?? []).entries()) {
    const at = `Parameters.parameter[${i}]`;
    if (p.name !== 'rule' && p.name !== 'patient') throw badRequest(`Unknown parameter "${p.name}"`, `${at}.name`);
    if (found[p.name]) throw badRequest(`Parameter "${p.name}" may be given only once`, at);
    if (p.name === 'rule') found.rule = ruleInput(p, at);
    else found.patient = { reference: patientInput(p, at), at };
  }
  if (!found.rule) throw badRequest('Give the rule: a PlanDefinition as "rule", or a reference to one', 'rule');
  if (!found.patient) throw badRequest('Give the patient: a reference or id as "patient"', 'patient');
  return found as Input;
}

function fromQuery(req: Request): Input {
  const params = searchParams(req);
  checkKnown(params, new Set(['rule', 'patient']));
  const rule = single(params, 'rule');
  const patient = single(params, 'patient');
  if (!rule) throw badRequest('Give the rule as a reference: rule=PlanDefinition/123 (POST a Parameters to try an unsaved one)', 'rule');
  if (!patient) throw badRequest('Give the patient: patient=Patient/123', 'patient');
  return { rule: { reference: rule, at: 'rule' }, patient: { reference: patient, at: 'patient' } };
}

function ruleInput(p: ParametersParameter, at: string): Input['rule'] {
  const resource = p.resource as Resource | undefined;
  if (resource) {
    if (resource.resourceType !== 'PlanDefinition') throw badRequest(`"rule" must be a PlanDefinition, not a ${resource.resourceType}`, `${at}.resource`);
    return { resource, at };
  }
  const reference = p.valueReference?.reference ?? p.valueCanonical;
  if (!reference) throw badRequest('"rule" must be a PlanDefinition resource or a reference to one', at);
  return { reference, at };
}

function patientInput(p: ParametersParameter, at: string): string {
  const value = p.valueReference?.reference ?? p.valueString ?? p.valueId;
  if (!value) throw badRequest('"patient" must be a reference (Patient/123) or an id', at);
  return value;
}

async function stored(fhir: FhirClient, reference: string, at: string): Promise<PlanDefinition> {
  const id = /^PlanDefinition\/([A-Za-z0-9\-.]{1,64})$/.exec(reference)?.[1];
  if (!id) throw badRequest(`"rule" must reference a PlanDefinition (PlanDefinition/123), not "${reference}"`, at);
  return readOr400<PlanDefinition>(fhir, 'PlanDefinition', id, at);
}

async function patientOf(fhir: FhirClient, patient: Input['patient']): Promise<string> {
  const id = /^(?:Patient\/)?([A-Za-z0-9\-.]{1,64})$/.exec(patient.reference)?.[1];
  if (!id) throw badRequest(`"patient" must be Patient/<id> or an id, not "${patient.reference}"`, patient.at);
  await readOr400<Patient>(fhir, 'Patient', id, patient.at);
  return id;
}

/**
 * An input naming a resource that is not there is a bad request, not a missing operation; one the
 * caller may not see answers the same, so that absent and forbidden look alike.
 */
async function readOr400<T extends Resource>(fhir: FhirClient, type: T['resourceType'], id: string, at: string): Promise<T> {
  try {
    return await fhir.read<T>(type, id);
  } catch (err) {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) throw badRequest(`${type}/${id} does not exist`, at);
    throw err;
  }
}

function readingPart({ reading, skipped, outcome }: { reading: Observation; skipped?: string; outcome?: RuleOutcome }): ParametersParameter {
  const time = effectiveTime(reading);
  return {
    name: 'reading',
    part: [
      { name: 'observation', valueReference: { reference: `Observation/${reading.id}` } },
      ...(typeof time === 'number' ? [{ name: 'effective', valueDateTime: new Date(time).toISOString() }] : []),
      ...(skipped ? [{ name: 'skipped', valueString: skipped }] : [{ name: 'fires', valueBoolean: outcome?.fires ?? false }]),
      ...(outcome?.conditions ?? []).map((c) => ({
        name: 'condition',
        part: [
          { name: 'path', valueString: c.path },
          { name: 'expression', valueString: c.expression },
          { name: 'met', valueBoolean: c.met },
          c.error ? { name: 'error', valueString: c.error } : { name: 'result', valueString: JSON.stringify(c.result) },
        ],
      })),
    ],
  };
}
