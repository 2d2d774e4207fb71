import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Observation, PlanDefinition, PlanDefinitionAction, PlanDefinitionActionCondition } from '@medplum/fhirtypes';
import { asJudged } from './context.ts';
import { compileCondition, evaluateRule } from './evaluate.ts';
import { readRule, ruleIssues, ruleWatches, RULE_PROFILE, SCOPE_URL } from './rule.ts';

const LOINC = 'http://loinc.org';

function plan(action: PlanDefinitionAction, extra: Partial<PlanDefinition> = {}): PlanDefinition {
  return { resourceType: 'PlanDefinition', id: 'r1', meta: { profile: [RULE_PROFILE] }, status: 'active', title: 'Test rule', action: [action], ...extra };
}
const when = (...expressions: string[]): PlanDefinitionActionCondition[] =>
  expressions.map((expression) => ({ kind: 'applicability', expression: { language: 'text/fhirpath', expression } }));
const pulse = (id: string, value: number, minute: number): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: LOINC, code: '8867-4' }] },
  effectiveDateTime: `2026-03-10T08:${String(minute).padStart(2, '0')}:00Z`,
  valueQuantity: { value, unit: '/min' },
});

describe('rule conditions', () => {
  const context = {
    trigger: pulse('c', 130, 30),
    previous: pulse('b', 100, 20),
    recent: [pulse('c', 130, 30), pulse('b', 100, 20), pulse('a', 125, 10)],
    patient: { resourceType: 'Patient' as const, gender: 'female' as const, birthDate: '1940-01-01' },
  };
  const run = (...expressions: string[]) => evaluateRule(readRule(plan({ condition: when(...expressions) })), context);

  it('sees the trigger, %resource, %previous, %recent and %patient', () => {
    assert.equal(run('value.value > 120').fires, true);
    assert.equal(run('%resource.value.value - %previous.value.value >= 30').fires, true);
    assert.equal(run('%recent.where(value.value > 120).count() = 2').fires, true);
    assert.equal(run('%recent.value.value.max() = 130').fires, true);
    assert.equal(run("%patient.gender = 'female' and %patient.birthDate < @1950-01-01").fires, true);
    assert.equal(run('value.value - %previous.value.value >= 31').fires, false);
  });

  it('fires only when every condition gives exactly true', () => {
    const both = run('value.value > 120', 'value.value < 125');
    assert.equal(both.fires, false);
    assert.deepEqual(both.conditions.map((c) => [c.path, c.met, c.result]), [
      ['PlanDefinition.action[0].condition[0].expression.expression', true, [true]],
      ['PlanDefinition.action[0].condition[1].expression.expression', false, [false]],
    ]);
    // empty (no previous reading) and non-boolean results are not true
    assert.equal(evaluateRule(readRule(plan({ condition: when('value.value - %previous.value.value > 0') })), { ...context, previous: undefined }).fires, false);
    assert.equal(run('value.value').fires, false);
    assert.equal(run('%recent.select(value.value > 120)').fires, false);
  });

  it('reports a condition that fails on the data instead of throwing', () => {
    // compiles, and runs on an empty Observation, but three recent values are not a single one
    assert.equal(compileCondition('%recent.value.value.single() > 1').error, undefined);
    const outcome = run('%recent.value.value.single() > 1');
    assert.equal(outcome.fires, false);
    assert.deepEqual([outcome.conditions[0].met, outcome.conditions[0].error], [false, 'Expected single']);
  });

  it('compiles once, and catches what only a run reveals', () => {
    assert.equal(compileCondition('value.value > 1').error, undefined);
    assert.match(compileCondition('value.value >').error ?? '', /mismatched input|extraneous|no viable/);
    assert.match(compileCondition('bogus(1)').error ?? '', /bogus/);
    assert.match(compileCondition('%nowhere > 1').error ?? '', /nowhere/);
    assert.equal(compileCondition('value.value > 1'), compileCondition('value.value > 1'));
  });
});

describe('rule definitions', () => {
  it('names each condition that does not compile and each bad scope', () => {
    const p = plan({ condition: when('value.value > 1', 'value.value >') }, {
      extension: [{ url: SCOPE_URL, valueReference: { reference: 'CareTeam/t1' } }, { url: SCOPE_URL, valueReference: { reference: 'Group/g' } }],
    });
    assert.deepEqual(ruleIssues(p).map((i) => i.expression?.[0]), ['PlanDefinition.action[0].condition[1].expression.expression', 'PlanDefinition.extension[1].valueReference']);
    assert.deepEqual(ruleIssues(plan({ condition: when('value.value > 1') })), []);
  });

  it('reads trigger codes and interactions, scope, priority and alert code', () => {
    const rule = readRule(plan({
      description: 'text',
      priority: 'asap',
      code: [{ coding: [{ system: 'https://vigil.health/fhir/CodeSystem/alert', code: 'pulse-high' }] }],
      trigger: [{ type: 'data-modified', data: [{ type: 'Observation', codeFilter: [{ path: 'code', code: [{ system: LOINC, code: '8867-4' }] }] }] }],
      condition: when('true'),
    }, { extension: [{ url: SCOPE_URL, valueReference: { reference: 'Patient/p1' } }] }));
    assert.deepEqual(rule.codes, [`${LOINC}|8867-4`]);
    assert.deepEqual([...rule.interactions], ['update']);
    assert.deepEqual(rule.scope, ['Patient/p1']);
    assert.equal(rule.priority, 'asap');
    assert.equal(rule.code, 'pulse-high');
    assert.deepEqual(rule.codings, []);
    assert.equal(ruleWatches(rule, [{ system: LOINC, code: '8867-4' }]), true);
    assert.equal(ruleWatches(rule, [{ system: LOINC, code: '2708-6' }]), false);
  });

  it('defaults: every Observation, created or updated, routine, custom-rule beside its own code', () => {
    const rule = readRule(plan({ code: [{ coding: [{ system: 'urn:org', code: 'x' }] }], condition: when('true') }, { status: 'draft' }));
    assert.deepEqual(rule.codes, []);
    assert.deepEqual([...rule.interactions], ['create', 'update']);
    assert.equal(rule.priority, 'routine');
    assert.equal(rule.active, false);
    assert.equal(rule.code, 'custom-rule');
    assert.deepEqual(rule.codings, [{ system: 'urn:org', code: 'x' }]);
    assert.equal(ruleWatches(rule, undefined), true);
  });
});

describe('readings as rules see them', () => {
  const UCUM = 'http://unitsofmeasure.org';
  const kPa = (code: string, value: number) => ({ code: { coding: [{ system: LOINC, code }] }, valueQuantity: { value, unit: 'kPa', system: UCUM, code: 'kPa' } });

  it('converts a vital sign to its canonical unit, a panel component by component', () => {
    const fahrenheit: Observation = { ...pulse('t', 0, 0), code: { coding: [{ system: LOINC, code: '8310-5' }] }, valueQuantity: { value: 98.6, unit: '°F', system: UCUM, code: '[degF]' } };
    assert.deepEqual(asJudged(fahrenheit)?.valueQuantity, { value: 37, unit: '°C', system: UCUM, code: 'Cel' });
    const panel: Observation = { ...pulse('bp', 0, 0), code: { coding: [{ system: LOINC, code: '85354-9' }] }, valueQuantity: undefined, component: [kPa('8480-6', 16), kPa('8462-4', 10.666)] };
    assert.deepEqual(asJudged(panel)?.component?.map((c) => [c.valueQuantity?.value && Math.round(c.valueQuantity.value), c.valueQuantity?.code]), [[120, 'mm[Hg]'], [80, 'mm[Hg]']]);
  });

  it('leaves out what vitals/ rejects, and other Observations as they are', () => {
    assert.equal(asJudged(pulse('zero', 0, 0)), undefined);
    const other: Observation = { ...pulse('o', 5, 0), code: { coding: [{ system: LOINC, code: '2339-0' }] }, valueQuantity: { value: 5, unit: 'mmol/L' } };
    assert.equal(asJudged(other), other);
  });
});
