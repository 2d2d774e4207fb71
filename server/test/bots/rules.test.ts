import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CapabilityStatement, CareTeam, Communication, Flag, OperationOutcome, Parameters, ParametersParameter, PlanDefinition } from '@medplum/fhirtypes';
import { DRIVERS, request, useServer } from '../support.ts';
import { enrol, LOINC, post, search } from './helpers.ts';
import { put, ranOn, reading, scopeRefusals } from './fixtures.ts';

const RULE_PROFILE = 'https://vigil.health/fhir/StructureDefinition/vigil-alert-rule';
const SCOPE = 'https://vigil.health/fhir/StructureDefinition/alert-rule-scope';
const CONDITION_PATH = 'PlanDefinition.action[0].condition[0].expression.expression';
const MIN = 60_000;
/** Rules in force are re-read this often (bots/rules/bot.ts). */
const RULES_TTL_MS = 5_000;

/** A heart-rate jump rule: fires when a pulse is 20/min or more above the previous one. */
function jumpRule(options: { expression?: string; scope?: string[]; status?: PlanDefinition['status'] } = {}): PlanDefinition {
  return {
    resourceType: 'PlanDefinition',
    meta: { profile: [RULE_PROFILE] },
    status: options.status ?? 'active',
    title: 'Heart rate jump',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/plan-definition-type', code: 'eca-rule' }] },
    extension: (options.scope ?? []).map((reference) => ({ url: SCOPE, valueReference: { reference } })),
    action: [{
      description: 'Heart rate rose by 20/min or more since the previous reading',
      code: [{ coding: [{ system: 'https://example.org/alerts', code: 'hr-jump', display: 'Heart rate jump' }] }],
      priority: 'urgent',
      trigger: [{ type: 'data-added', data: [{ type: 'Observation', codeFilter: [{ path: 'code', code: [{ system: LOINC, code: '8867-4' }] }] }] }],
      condition: [{ kind: 'applicability', expression: { language: 'text/fhirpath', expression: options.expression ?? 'value.value - %previous.value.value >= 20' } }],
    }],
  };
}

const part = (p: ParametersParameter[] | undefined, name: string) => p?.find((x) => x.name === name);

for (const driver of DRIVERS) {
  describe(`custom alert rules (${driver})`, () => {
    const server = useServer(driver);
    let inScope = '';
    let outOfScope = '';

    it('refuses a rule whose condition does not compile, naming the expression', async () => {
      for (const expression of ['value.value >', 'bogus(value)', '%nowhere.value > 1']) {
        const res = await request<OperationOutcome>('POST', `${server.fhir}/PlanDefinition`, jumpRule({ expression }));
        assert.equal(res.status, 400, expression);
        assert.deepEqual(res.body.issue?.map((i) => i.expression?.[0]), [CONDITION_PATH]);
        assert.match(res.body.issue?.[0].diagnostics ?? '', new RegExp(`^Invalid FHIRPath "${expression.replace(/[()%.]/g, '\\$&')}": `));
      }
      // the same on update: the stored rule stays as it was
      const stored = await post(server, jumpRule({ status: 'draft' }));
      const res = await request<OperationOutcome>('PUT', `${server.fhir}/PlanDefinition/${stored.id}`, { ...jumpRule({ expression: 'value.value >' }), id: stored.id });
      assert.equal(res.status, 400);
      assert.equal(res.body.issue?.[0].expression?.[0], CONDITION_PATH);
      const now = await request<PlanDefinition>('GET', `${server.fhir}/PlanDefinition/${stored.id}`);
      assert.equal(now.body.meta?.versionId, stored.meta?.versionId);
      // a scope that is not a Patient or CareTeam, and a rule without conditions (the profile: 422)
      const scoped = await request<OperationOutcome>('POST', `${server.fhir}/PlanDefinition`, jumpRule({ scope: ['Device/1'] }));
      assert.equal(scoped.status, 400);
      assert.equal(scoped.body.issue?.[0].expression?.[0], 'PlanDefinition.extension[0].valueReference');
      const bare = jumpRule();
      delete bare.action?.[0].condition;
      const missing = await request<OperationOutcome>('POST', `${server.fhir}/PlanDefinition`, bare);
      assert.equal(missing.status, 422);
      assert.match(missing.body.issue?.[0].diagnostics ?? '', /requires PlanDefinition\.action\[0\]\.condition/);
    });

    it('raises the rule\'s alert for the patients of the care team in scope only', async () => {
      ({ patient: inScope } = await enrol(server, 'In scope'));
      ({ patient: outOfScope } = await enrol(server, 'Out of scope'));
      // a clinic's team takes part in the in-scope patient's own care team
      const clinic = await post<CareTeam>(server, { resourceType: 'CareTeam', status: 'active', name: 'Cardiology clinic' });
      const [own] = await search<CareTeam>(server, `CareTeam?patient=Patient/${inScope}`);
      await put(server, { ...own, participant: [...(own.participant ?? []), { member: { reference: `CareTeam/${clinic.id}` } }] });
      const rule = await post(server, jumpRule({ scope: [`CareTeam/${clinic.id}`] }));
      await sleep(RULES_TTL_MS + 500);
      for (const patient of [inScope, outOfScope]) {
        await post(server, reading(patient, '8867-4', 70, Date.now() - 10 * MIN));
        const jump = await post(server, reading(patient, '8867-4', 95, Date.now() - 5 * MIN));
        await ranOn(server, `Observation/${jump.id}`, 'rules');
      }
      const [flag] = await search<Flag>(server, `Flag?patient=Patient/${inScope}`);
      assert.deepEqual(flag.code?.coding?.map((c) => c.code), ['custom-rule', 'hr-jump']);
      assert.equal(flag.code?.text, 'Heart rate jump');
      assert.equal(flag.extension?.find((e) => e.url.endsWith('alert-priority'))?.valueCode, 'urgent');
      assert.equal(flag.extension?.filter((e) => e.valueReference?.reference?.startsWith('Observation/')).length, 2, 'the reading and the previous one');
      assert.equal(flag.identifier?.[0].value, `${inScope}/rule-${rule.id}`);
      const [notice] = await search<Communication>(server, `Communication?subject=Patient/${inScope}`);
      assert.equal(notice.priority, 'urgent');
      assert.match(notice.payload?.[0].contentString ?? '', /^Heart rate jump: Heart rate rose by 20\/min or more since the previous reading \(8867-4 95 \/min at .*\)$/);
      assert.equal((await search(server, `Flag?patient=Patient/${outOfScope}`)).length, 0);
    });

    it('$evaluate-rule says whether a draft would fire on the patient\'s recent readings, and why', async () => {
      const draft = jumpRule({ status: 'draft' });
      const res = await request<Parameters>('POST', `${server.fhir}/PlanDefinition/$evaluate-rule`, {
        resourceType: 'Parameters',
        parameter: [{ name: 'rule', resource: draft }, { name: 'patient', valueReference: { reference: `Patient/${outOfScope}` } }],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const p = res.body.parameter;
      assert.equal(part(p, 'fires')?.valueBoolean, true);
      assert.equal(part(p, 'active')?.valueBoolean, false);
      assert.equal(part(p, 'inScope')?.valueBoolean, true);
      assert.equal(part(p, 'evaluated')?.valueInteger, 2);
      assert.equal(part(p, 'summary')?.valueString, 'Would fire on 1 of the 2 newest readings it watches in the last 1440 min. The rule is draft: only active rules run.');
      const readings = p?.filter((x) => x.name === 'reading') ?? [];
      assert.deepEqual(readings.map((r) => part(r.part, 'fires')?.valueBoolean), [true, false]);
      const [newest, oldest] = readings.map((r) => part(r.part, 'condition')?.part);
      assert.deepEqual([part(newest, 'path')?.valueString, part(newest, 'met')?.valueBoolean, part(newest, 'result')?.valueString], [CONDITION_PATH, true, '[true]']);
      // the first reading has no previous one: the expression is empty, not true
      assert.equal(part(oldest, 'result')?.valueString, '[]');
    });

    it('$evaluate-rule takes a stored rule by reference, also by GET, and refuses bad input', async () => {
      const [stored] = await search<PlanDefinition>(server, 'PlanDefinition?status=active');
      const get = await request<Parameters>('GET', `${server.fhir}/PlanDefinition/$evaluate-rule?rule=PlanDefinition/${stored.id}&patient=Patient/${outOfScope}`);
      assert.equal(get.status, 200);
      assert.equal(part(get.body.parameter, 'inScope')?.valueBoolean, false);
      assert.match(part(get.body.parameter, 'summary')?.valueString ?? '', /does not apply to this patient/);
      // a patient's own care team is in scope too
      const [team] = await search<CareTeam>(server, `CareTeam?patient=Patient/${outOfScope}`);
      const own = await request<Parameters>('POST', `${server.fhir}/PlanDefinition/$evaluate-rule`, {
        resourceType: 'Parameters',
        parameter: [{ name: 'rule', resource: jumpRule({ scope: [`CareTeam/${team.id}`] }) }, { name: 'patient', valueString: outOfScope }],
      });
      assert.equal(part(own.body.parameter, 'inScope')?.valueBoolean, true);
      const post = (parameter: ParametersParameter[]) => request<OperationOutcome>('POST', `${server.fhir}/PlanDefinition/$evaluate-rule`, { resourceType: 'Parameters', parameter });
      const bad = await post([{ name: 'rule', resource: jumpRule({ expression: 'value.value >' }) }, { name: 'patient', valueString: inScope }]);
      assert.equal(bad.status, 400);
      assert.equal(bad.body.issue?.[0].expression?.[0], CONDITION_PATH);
      const nobody = await post([{ name: 'rule', valueReference: { reference: `PlanDefinition/${stored.id}` } }, { name: 'patient', valueString: 'nobody' }]);
      assert.equal(nobody.status, 400);
      assert.equal(nobody.body.issue?.[0].expression?.[0], 'Parameters.parameter[1]');
      const unknown = await post([{ name: 'rules', valueString: 'x' }]);
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.issue?.[0].expression?.[0], 'Parameters.parameter[0].name');
      const metadata = await request<CapabilityStatement>('GET', `${server.fhir}/metadata`);
      const planDefinition = metadata.body.rest?.[0].resource?.find((r) => r.type === 'PlanDefinition');
      assert.ok(planDefinition?.operation?.some((o) => o.name === 'evaluate-rule'));
    });

    it('sees readings as the built-in bots judge them: in canonical units, implausible ones left out', async () => {
      const { patient } = await enrol(server, 'Judged');
      const scope = [`Patient/${patient}`];
      const fever = jumpRule({ expression: 'value.value > 38 and %recent.where(value.value > 38).count() = 1', scope });
      fever.title = 'Fever';
      fever.action![0].trigger = [{ type: 'data-added', data: [{ type: 'Observation', codeFilter: [{ path: 'code', code: [{ system: LOINC, code: '8310-5' }] }] }] }];
      await post(server, fever);
      await post(server, jumpRule({ scope }));
      await sleep(RULES_TTL_MS + 500);
      const fahrenheit = (value: number, minutesAgo: number) =>
        reading(patient, '8310-5', value, Date.now() - minutesAgo * MIN, { valueQuantity: { value, unit: '°F', system: 'http://unitsofmeasure.org', code: '[degF]' } });
      // 98.6 °F is 37 °C: not a fever, whatever the number
      const normal = await post(server, fahrenheit(98.6, 30));
      assert.match((await ranOn(server, `Observation/${normal.id}`, 'rules'))[0].outcomeDesc ?? '', /^Fever: not met$/);
      // a pulse of 0 is stored, but no rule judges it, and it is no previous reading
      await post(server, reading(patient, '8867-4', 68, Date.now() - 20 * MIN));
      const zero = await post(server, reading(patient, '8867-4', 0, Date.now() - 15 * MIN));
      const [rejected] = await ranOn(server, `Observation/${zero.id}`, 'rules');
      assert.equal(rejected.outcome, '4');
      assert.match(rejected.outcomeDesc ?? '', /pulse 0 \/min is implausible/);
      const pulse = await post(server, reading(patient, '8867-4', 72, Date.now() - 10 * MIN));
      assert.match((await ranOn(server, `Observation/${pulse.id}`, 'rules'))[0].outcomeDesc ?? '', /^Heart rate jump: not met$/);
      assert.equal((await search(server, `Flag?patient=Patient/${patient}`)).length, 0);
      // 101.3 °F is 38.5 °C, and the only reading above 38 °C in the recent window
      const high = await post(server, fahrenheit(101.3, 5));
      await ranOn(server, `Observation/${high.id}`, 'rules');
      const [flag] = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
      assert.equal(flag?.code?.text, 'Fever');
    });

    it('ran every bot within the scopes its manifest declares', async () => {
      assert.deepEqual(await scopeRefusals(server), []);
    });
  });
}
