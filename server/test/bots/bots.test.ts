import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEvent, Basic, Communication, Extension, Flag, Goal, Observation, Organization, Patient, RiskAssessment } from '@medplum/fhirtypes';
import { setTimeout as sleep } from 'node:timers/promises';
import { DRIVERS, request, scrape, useServer } from '../support.ts';
import { botRuns, createAll, ranOn, scopeRefusals, vital } from './fixtures.ts';
import { enrol, eventually, post, search } from './helpers.ts';

const NEWS2 = 'http://snomed.info/sct|1104051000000101';
const PRIORITY = 'https://vigil.health/fhir/StructureDefinition/alert-priority';
const priorityOf = (flag: Flag) => flag.extension?.find((e) => e.url === PRIORITY)?.valueCode;

/** The audit records of bot runs triggered by an Observation. */
const audits = (server: Parameters<typeof search>[0], observation: string) => search<AuditEvent>(server, `AuditEvent?entity=Observation/${observation}&type=https://vigil.health/fhir/CodeSystem/audit-event-type|bot-run&_count=50`);

/** An active Goal: the patient's range for one LOINC measure. */
function rangeGoal(patient: string, code: string, low: number, high: number, unit: string): Goal {
  const quantity = (value: number) => ({ value, unit, system: 'http://unitsofmeasure.org', code: unit });
  return {
    resourceType: 'Goal',
    lifecycleStatus: 'active',
    description: { text: `${code} ${low}–${high} ${unit}` },
    subject: { reference: `Patient/${patient}` },
    target: [{ measure: { coding: [{ system: 'http://loinc.org', code }] }, detailRange: { low: quantity(low), high: quantity(high) } }],
  };
}

for (const driver of DRIVERS) {
  describe(`bots (${driver})`, () => {
    const server = useServer(driver);

    describe('NEWS2 on a wearable', () => {
      it('stores a changed score within its band at most every 5 minutes of readings, a new band at once', async () => {
        const { patient } = await enrol(server, 'Streaming');
        const scores = async () => (await search<Observation>(server, `Observation?subject=Patient/${patient}&code=${NEWS2}&_sort=-date`)).map((o) => o.valueInteger);
        const news2 = async (code: string, value: number, minutesAgo: number) => {
          const o = await post(server, vital(patient, code, value, minutesAgo));
          return (await ranOn(server, `Observation/${o.id}`, 'news2'))[0].outcomeDesc ?? '';
        };
        const inputs: [string, number][] = [['9279-1', 16], ['2708-6', 97], ['8480-6', 120], ['8867-4', 80]];
        for (const [i, [code, value]] of inputs.entries()) await post(server, vital(patient, code, value, 31 - i));
        assert.match(await news2('8310-5', 37, 26), /^NEWS2 0 \(low\)$/);
        // SpO2 95 % →1 a minute later: still low, the stored 0 stands
        assert.match(await news2('2708-6', 95, 25), /^NEWS2 1 \(low\), stored score 0 stands \(same band\)$/);
        assert.deepEqual(await scores(), [0]);
        assert.match(await news2('2708-6', 95, 20), /^NEWS2 1 \(low\)$/);
        assert.deepEqual(await scores(), [1, 0]);
        // SpO2 91 % →3: low-medium, stored (and alerted on) at once
        assert.match(await news2('2708-6', 91, 19), /^NEWS2 3 \(low-medium\): alert raised/);
        assert.deepEqual(await scores(), [3, 1, 0]);
      });
    });

    describe('NEWS2 on a deteriorating patient', () => {
      let patient = '';
      let practitioner = '';
      let worse: Observation;
      let flagId = '';

      it('scores the five vital signs, raises one Flag and tells the care team once', async () => {
        ({ patient, practitioner } = await enrol(server, 'Deteriorating'));
        // RR 22 →2, SpO2 94 →1, systolic 105 →1, pulse 105 →1, temperature 38.5 →1: NEWS2 6, medium
        const inputs: [string, number][] = [['9279-1', 22], ['2708-6', 94], ['8480-6', 105], ['8867-4', 105], ['8310-5', 38.5]];
        for (const [i, [code, value]] of inputs.entries()) await post(server, vital(patient, code, value, 30 - i));
        const [score] = await eventually(async () => {
          const found = await search<Observation>(server, `Observation?subject=Patient/${patient}&code=${NEWS2}`);
          return found.length ? found : undefined;
        }, 'the NEWS2 Observation');
        assert.equal(score.valueInteger, 6);
        assert.equal(score.interpretation?.[0].coding?.[0].code, 'medium');
        assert.equal(score.derivedFrom?.length, 5);
        const [risk] = await eventually(async () => {
          const found = await search<RiskAssessment>(server, `RiskAssessment?subject=Patient/${patient}`);
          return found.length ? found : undefined;
        }, 'the RiskAssessment');
        assert.equal(risk.prediction?.[0].qualitativeRisk?.coding?.[0].code, 'medium');
        const communications = await eventually(async () => {
          const found = await search<Communication>(server, `Communication?subject=Patient/${patient}`);
          return found.length ? found : undefined;
        }, 'the Communication');
        const flags = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
        assert.equal(flags.length, 1);
        assert.equal(flags[0].status, 'active');
        assert.equal(flags[0].code?.coding?.[0].code, 'news2-medium');
        assert.match(flags[0].author?.reference ?? '', /^Device\//);
        assert.ok(flags[0].extension?.some((e) => e.valueReference?.reference === `RiskAssessment/${risk.id}`));
        flagId = flags[0].id as string;
        assert.equal(communications.length, 1);
        const [c] = communications;
        assert.equal(c.status, 'in-progress');
        assert.equal(c.priority, 'asap');
        assert.deepEqual(c.recipient?.map((r) => r.reference), [`Practitioner/${practitioner}`]);
        assert.equal(c.about?.[0].reference, `Flag/${flagId}`);
        assert.match(c.payload?.[0].contentString ?? '', /NEWS2 6 \(medium risk/);
      });

      it('counts the runs on /metrics: by bot and outcome, handler durations, runs pending', async () => {
        const value = await scrape(server.base);
        assert.ok(value('vigil_bot_runs_total{bot="news2",outcome="success"}') >= 1);
        assert.ok(value('vigil_bot_run_duration_seconds_count{bot="news2"}') >= value('vigil_bot_runs_total{bot="news2",outcome="success"}'));
        assert.ok(value('vigil_bot_runs_pending') >= 0);
      });

      it('escalates the same Flag on a worse reading and sends a second Communication', async () => {
        // systolic 95 →2: NEWS2 7, high (and below every home threshold, so no other Flag)
        worse = await post(server, vital(patient, '8480-6', 95, 20));
        const flag = await eventually(async () => {
          const f = (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0];
          return f?.code?.coding?.[0].code === 'news2-high' ? f : undefined;
        }, 'the escalated Flag');
        assert.equal(flag.id, flagId);
        assert.ok(Number(flag.meta?.versionId) > 1);
        assert.equal(priorityOf(flag), 'stat');
        const communications = await eventually(async () => {
          const found = await search<Communication>(server, `Communication?subject=Patient/${patient}&_sort=sent`);
          return found.length === 2 ? found : undefined;
        }, 'the second Communication');
        assert.equal(communications[1].priority, 'stat');
        assert.equal((await search<Flag>(server, `Flag?patient=Patient/${patient}`)).length, 1);
      });

      it('adds no score and leaves the Flag alone when a reading keeps the assessment as it was', async () => {
        const flag = (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0];
        // pulse 104 scores as 105 did (91–110 →1): NEWS2 still 7
        const same = await post(server, vital(patient, '8867-4', 104, 19));
        const [run] = await eventually(async () => {
          const found = (await audits(server, same.id as string)).filter((a) => a.agent?.some((g) => g.who?.display === 'Vigil NEWS2'));
          return found.length ? found : undefined;
        }, 'the NEWS2 run');
        assert.match(run.outcomeDesc ?? '', /NEWS2 7 \(high\), unchanged: alert unchanged/);
        assert.equal((await search(server, `Observation?subject=Patient/${patient}&code=${NEWS2}`)).length, 2);
        assert.equal((await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0].meta?.versionId, flag.meta?.versionId);
      });

      it('absorbs a redelivered change: nothing is duplicated', async () => {
        const counts = async () => ({
          scores: (await search(server, `Observation?subject=Patient/${patient}&code=${NEWS2}`)).length,
          risks: (await search(server, `RiskAssessment?subject=Patient/${patient}`)).length,
          flags: (await search(server, `Flag?patient=Patient/${patient}`)).length,
          communications: (await search(server, `Communication?subject=Patient/${patient}`)).length,
        });
        const before = await counts();
        assert.deepEqual(before, { scores: 2, risks: 2, flags: 1, communications: 2 });
        const runs = (await audits(server, worse.id as string)).length;
        const change = { interaction: 'create' as const, resourceType: 'Observation', id: worse.id as string, versionId: '1' };
        const host = server.vigil.bots?.host;
        assert.ok(host);
        await Promise.all([host.handleChanges([change]), host.handleChanges([change])]);
        // the job ran again (NEWS2 audits it; systolic 95 is within the home limits, so thresholds has no run) but found everything already done
        await eventually(async () => ((await audits(server, worse.id as string)).length >= runs + 1 ? true : undefined), 'the redelivered run');
        await sleep(300);
        assert.deepEqual(await counts(), before);
      });

      it('audits an implausible reading and never alerts on it', async () => {
        const flag = (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0];
        const bad = await post(server, vital(patient, '2708-6', 140, 15));
        const records = await eventually(async () => {
          const found = await audits(server, bad.id as string);
          return found.length === 2 ? found : undefined;
        }, 'the AuditEvents of the rejected reading');
        // recorded by the audit trail, not written through the store: no history, no outbox, nothing notified
        const [history] = await server.vigil.db.query<{ n: number }>('SELECT count(*)::int AS n FROM "AuditEvent_History" WHERE id = ANY($1)', [records.map((r) => r.id)]);
        assert.equal(history.n, 0);
        for (const r of records) {
          assert.equal(r.outcome, '4');
          assert.match(r.outcomeDesc ?? '', /SpO2/);
          assert.equal(r.entity?.filter((e) => e.description === 'created' || e.description === 'updated').length, 0);
        }
        const after = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
        assert.equal(after.length, 1);
        assert.equal(after[0].meta?.versionId, flag.meta?.versionId);
      });

      it('retracts the Flag and its Communications when the reading is entered in error', async () => {
        const res = await request('PUT', `${server.fhir}/Observation/${worse.id}`, { ...worse, status: 'entered-in-error' });
        assert.equal(res.status, 200);
        const flag = await eventually(async () => {
          const f = (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0];
          return f.status === 'entered-in-error' ? f : undefined;
        }, 'the retracted Flag');
        assert.ok(flag.period?.end);
        const communications = await eventually(async () => {
          const found = await search<Communication>(server, `Communication?subject=Patient/${patient}`);
          return found.every((c) => c.status === 'entered-in-error') ? found : undefined;
        }, 'the retracted Communications');
        assert.equal(communications.length, 2);
        const scores = await search<Observation>(server, `Observation?subject=Patient/${patient}&code=${NEWS2}&status=entered-in-error`);
        assert.equal(scores.length, 1);
      });
    });

    it('scores with the newest usable reading when a newer one is unusable', async () => {
      const { patient } = await enrol(server, 'Unusable');
      // RR 22 →2, SpO2 94 →1, systolic 105 →1, pulse 105 →1, temperature 38.5 →1: NEWS2 6
      const inputs: [string, number, number][] = [['9279-1', 22, 30], ['2708-6', 94, 29], ['8480-6', 105, 28], ['8867-4', 105, 27], ['8310-5', 38.5, 26]];
      const [, spo2] = await createAll(server, inputs.map(([code, value, ago]) => vital(patient, code, value, ago)));
      const implausible = await post(server, vital(patient, '2708-6', 140, 5));
      await eventually(async () => ((await audits(server, implausible.id as string)).length === 2 ? true : undefined), 'the runs on the implausible SpO2');
      // pulse 115 →2: NEWS2 7, a new assessment
      const pulse = await post(server, vital(patient, '8867-4', 115, 1));
      const score = await eventually(async () => {
        const found = await search<Observation>(server, `Observation?subject=Patient/${patient}&code=${NEWS2}&derived-from=Observation/${pulse.id}`);
        return found[0];
      }, 'the score the last pulse gave');
      assert.equal(score.valueInteger, 7);
      const inputsUsed = score.derivedFrom?.map((r) => r.reference);
      assert.ok(inputsUsed?.includes(`Observation/${spo2.id}`));
      assert.ok(!inputsUsed?.includes(`Observation/${implausible.id}`));
    });

    describe('thresholds', () => {
      it('raises an urgent Flag at once on SpO2 89', async () => {
        const { patient } = await enrol(server, 'Hypoxic');
        await post(server, vital(patient, '2708-6', 89, 1));
        const flag = await eventually(async () => (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0], 'the SpO2 Flag');
        assert.equal(flag.code?.coding?.[0].code, 'spo2-low');
        assert.equal(priorityOf(flag), 'urgent');
        const [c] = await eventually(async () => {
          const found = await search<Communication>(server, `Communication?subject=Patient/${patient}`);
          return found.length ? found : undefined;
        }, 'the Communication');
        assert.equal(c.priority, 'urgent');
        assert.match(c.payload?.[0].contentString ?? '', /SpO2 89 % is at or below 92 %/);
      });

      it('needs 2 of 3 readings for advice', async () => {
        const { patient } = await enrol(server, 'Tachycardic');
        const first = await post(server, vital(patient, '8867-4', 115, 10));
        await eventually(async () => ((await audits(server, first.id as string)).length === 2 ? true : undefined), 'the first pulse runs');
        assert.equal((await search<Flag>(server, `Flag?patient=Patient/${patient}`)).length, 0);
        await post(server, vital(patient, '8867-4', 118, 5));
        const flag = await eventually(async () => (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0], 'the pulse Flag');
        assert.equal(flag.code?.coding?.[0].code, 'pulse-high');
        assert.equal(priorityOf(flag), 'routine');
        assert.equal(flag.extension?.filter((e) => e.valueReference).length, 2);
      });

      it('leaves a standing advice Flag alone, reading no history, until 5 minutes of readings have passed', async () => {
        const { patient } = await enrol(server, 'Desaturating');
        const flags = () => search<Flag>(server, `Flag?patient=Patient/${patient}`);
        const spo2 = async (value: number, minutesAgo: number) => {
          const o = await post(server, vital(patient, '2708-6', value, minutesAgo));
          return (await ranOn(server, `Observation/${o.id}`, 'thresholds'))[0].outcomeDesc ?? '';
        };
        await spo2(94, 12);
        assert.match(await spo2(94, 7), /^spo2-low advice: alert raised/);
        const [flag] = await flags();
        assert.match(await spo2(93, 5), /^spo2-low: alert stands \(breach recorded within 5 min\)$/);
        assert.equal((await flags())[0].meta?.versionId, flag.meta?.versionId);
        assert.match(await spo2(93, 1), /^spo2-low advice: alert updated/);
        assert.equal((await flags()).length, 1);
      });

      it('leaves readings from the past alone (an imported history), monitoring the recent ones', async () => {
        const { patient } = await enrol(server, 'Imported');
        const old = await post(server, vital(patient, '2708-6', 84, 8 * 24 * 60));
        const recent = await post(server, vital(patient, '2708-6', 97, 1));
        // within limits, with no alert standing: NEWS2 runs, thresholds has nothing to decide
        await ranOn(server, `Observation/${recent.id}`, 'news2');
        assert.deepEqual(await audits(server, old.id as string), []);
        assert.deepEqual(await search<Flag>(server, `Flag?patient=Patient/${patient}`), []);
      });

      it('raises no alert from a late reading when a newer one of its measure came first, but still scores it', async () => {
        const { patient } = await enrol(server, 'Catching up');
        const normal: [string, number][] = [['9279-1', 16], ['2708-6', 97], ['8480-6', 120], ['8867-4', 70], ['8310-5', 37]];
        await createAll(server, normal.map(([code, value]) => vital(patient, code, value, 40)));
        const newest = await createAll(server, normal.map(([code, value]) => vital(patient, code, value, 10)));
        // their runs over, so that none takes the late reading for the latest of its window
        for (const o of newest) await ranOn(server, `Observation/${o.id}`, 'news2');
        // a device catching up sends SpO2 85 taken 20 minutes ago, after the 10-minute reading
        const late = await post(server, vital(patient, '2708-6', 85, 20));
        const runs = await eventually(async () => {
          const found = await audits(server, late.id as string);
          return found.length === 2 ? new Map(found.map((r) => [r.subtype?.[0].code, r.outcomeDesc])) : undefined;
        }, 'the runs on the late reading');
        assert.equal(runs.get('news2'), 'NEWS2 3 (low-medium): no alert, a newer reading of the same measure came first');
        assert.equal(runs.get('thresholds'), 'spo2-low urgent: no alert, a newer reading of the same measure came first');
        const [score] = await search<Observation>(server, `Observation?subject=Patient/${patient}&code=${NEWS2}&derived-from=Observation/${late.id}`);
        assert.equal(score?.valueInteger, 3);
        assert.deepEqual(await search<Flag>(server, `Flag?patient=Patient/${patient}`), []);
      });

      it('judges only readings that meet a limit of the patient\'s (a Goal\'s range included), or come while an alert of their measure stands', async () => {
        const { patient } = await enrol(server, 'Steady');
        const normal = await post(server, vital(patient, '8867-4', 80, 20));
        await ranOn(server, `Observation/${normal.id}`, 'news2');
        await sleep(300);
        assert.deepEqual(await botRuns(server, `Observation/${normal.id}`, 'thresholds'), []);
        // pulse 105 is within the default limits (advice from 111), past this patient's 50–100
        await post(server, rangeGoal(patient, '8867-4', 50, 100, '/min'));
        await post(server, vital(patient, '8867-4', 105, 10));
        await post(server, vital(patient, '8867-4', 106, 5));
        const flag = await eventually(async () => (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0], 'the pulse Flag');
        assert.equal(flag.code?.coding?.[0].code, 'pulse-high');
        // within the range again: judged, as it may clear the standing alert
        const back = await post(server, vital(patient, '8867-4', 82, 1));
        const [run] = await ranOn(server, `Observation/${back.id}`, 'thresholds');
        assert.equal(run.outcomeDesc, 'within limits');
      });
    });

    describe('settings from FHIR resources', () => {
      const setting = (patient: string, bot: string, extension: Extension[]): Basic => ({
        resourceType: 'Basic',
        code: { coding: [{ system: 'https://vigil.health/fhir/CodeSystem/bot', code: bot }] },
        subject: { reference: `Patient/${patient}` },
        extension,
      });
      const parameter = (name: string, valueDecimal: number): Extension => ({
        url: 'https://vigil.health/fhir/StructureDefinition/bot-parameter',
        extension: [{ url: 'name', valueString: name }, { url: 'value', valueDecimal }],
      });

      it('a Basic disables a bot for one patient', async () => {
        const { patient } = await enrol(server, 'Opted-out');
        await post(server, setting(patient, 'thresholds', [{ url: 'https://vigil.health/fhir/StructureDefinition/bot-enabled', valueBoolean: false }]));
        const reading = await post(server, vital(patient, '2708-6', 89, 1));
        const [run] = await eventually(async () => {
          const found = await audits(server, reading.id as string);
          return found.length ? found : undefined;
        }, 'the NEWS2 run');
        await sleep(300);
        assert.equal(run.subtype?.[0].code, 'news2');
        assert.equal((await audits(server, reading.id as string)).length, 1);
        assert.equal((await search(server, `Flag?patient=Patient/${patient}`)).length, 0);
      });

      it('NEWS2 finds every input, however many readings of another measure came after it', async () => {
        const { patient } = await enrol(server, 'Streaming');
        const off = setting(patient, 'news2', [{ url: 'https://vigil.health/fhir/StructureDefinition/bot-enabled', valueBoolean: false }]);
        const [setOff] = await createAll(server, [off, ...['thresholds', 'rules', 'baseline'].map((bot) => ({ ...off, code: { coding: [{ ...off.code.coding?.[0], code: bot }] } }))]);
        await createAll(server, [['9279-1', 18], ['2708-6', 97], ['8480-6', 120], ['8310-5', 37]].map(([code, value]) => vital(patient, code as string, value as number, 40)));
        // a wearable's pulse every 4 s since: 600 newer readings than the other inputs
        await createAll(server, Array.from({ length: 600 }, (_, i) => vital(patient, '8867-4', 70, 39 - i / 15)));
        assert.equal((await request('DELETE', `${server.fhir}/Basic/${setOff.id}`)).status, 200);
        const last = await post(server, vital(patient, '8867-4', 72, 0));
        const [run] = await ranOn(server, `Observation/${last.id}`, 'news2');
        assert.match(run.outcomeDesc ?? '', /^NEWS2 0 \(low\)/);
      });

      it('ends the Flag once the condition has cleared for the configured time', async () => {
        const { patient } = await enrol(server, 'Recovering');
        await post(server, setting(patient, 'thresholds', [parameter('clearAfterMinutes', 10)]));
        await post(server, vital(patient, '2708-6', 89, 30));
        await eventually(async () => (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0], 'the SpO2 Flag');
        const clear = await post(server, vital(patient, '2708-6', 97, 25));
        await eventually(async () => ((await audits(server, clear.id as string)).length === 2 ? true : undefined), 'the first clear reading');
        assert.equal((await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0].status, 'active');
        await post(server, vital(patient, '2708-6', 98, 10));
        const ended = await eventually(async () => {
          const f = (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0];
          return f.status === 'inactive' ? f : undefined;
        }, 'the ended Flag');
        assert.ok(ended.period?.end);
      });

      it('scores SpO2 on scale 2 and respects the personal range for a Goal of 88–92 %', async () => {
        const { patient } = await enrol(server, 'Hypercapnic');
        await post(server, rangeGoal(patient, '2708-6', 88, 92, '%'));
        // RR 16, SpO2 90 (scale 2: 0), systolic 120, pulse 80, temperature 37: NEWS2 0
        const inputs: [string, number][] = [['9279-1', 16], ['2708-6', 90], ['8480-6', 120], ['8867-4', 80], ['8310-5', 37]];
        for (const [i, [code, value]] of inputs.entries()) await post(server, vital(patient, code, value, 10 - i));
        const [score] = await eventually(async () => {
          const found = await search<Observation>(server, `Observation?subject=Patient/${patient}&code=${NEWS2}`);
          return found.length ? found : undefined;
        }, 'the NEWS2 Observation');
        assert.equal(score.valueInteger, 0);
        assert.equal(score.component?.[1].code.coding?.[0].code, '1104321000000108');
        assert.equal((await search(server, `Flag?patient=Patient/${patient}`)).length, 0);
      });

      /** Posts a reading and waits for what the thresholds bot made of it. */
      const judged = async (patient: string, code: string, value: number, minutesAgo: number) => {
        const o = await post(server, vital(patient, code, value, minutesAgo));
        return (await ranOn(server, `Observation/${o.id}`, 'thresholds'))[0].outcomeDesc ?? '';
      };

      it('alerts on SpO2 above a Goal of 88–92 %, a side the defaults leave open', async () => {
        const { patient } = await enrol(server, 'Over-oxygenated');
        await post(server, rangeGoal(patient, '2708-6', 88, 92, '%'));
        assert.equal(await judged(patient, '2708-6', 96, 10), 'within limits');
        assert.match(await judged(patient, '2708-6', 96, 5), /^spo2-high advice: alert raised/);
        const [flag] = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
        assert.deepEqual(flag.code?.coding?.[0], { system: 'https://vigil.health/fhir/CodeSystem/alert', code: 'spo2-high', display: 'High oxygen saturation' });
        assert.equal(priorityOf(flag), 'routine');
      });

      it('gives advice on a systolic Goal, where the defaults are all urgent: 2 readings above it within 30 min', async () => {
        const { patient } = await enrol(server, 'Hypertensive');
        await post(server, rangeGoal(patient, '8480-6', 100, 140, 'mm[Hg]'));
        assert.equal(await judged(patient, '8480-6', 150, 10), 'within limits');
        assert.deepEqual(await search(server, `Flag?patient=Patient/${patient}`), []);
        assert.match(await judged(patient, '8480-6', 152, 5), /^bp-high advice: alert raised/);
        const [flag] = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
        assert.equal(flag.code?.coding?.[0].code, 'bp-high');
        assert.equal(priorityOf(flag), 'routine');
        assert.equal(flag.extension?.filter((e) => e.valueReference).length, 2);
      });

      it('moves a limit by an organisation\'s setting for its patients, and by a patient\'s own over it', async () => {
        const organisation = await post<Organization>(server, { resourceType: 'Organization', name: 'Highland clinic' });
        await post(server, { ...setting('', 'thresholds', [parameter('spo2-low-urgent', 90)]), subject: { reference: `Organization/${organisation.id}` } });
        const member = async (family: string) =>
          (await post<Patient>(server, { resourceType: 'Patient', name: [{ family }], managingOrganization: { reference: `Organization/${organisation.id}` } })).id as string;
        const patient = await member('Highlander');
        // SpO2 91 % is urgent by the defaults; below the organisation's 90 % no longer, and advice waits for a second reading
        assert.equal(await judged(patient, '2708-6', 91, 10), 'within limits');
        assert.match(await judged(patient, '2708-6', 90, 5), /^spo2-low urgent: alert raised/);
        const own = await member('Lowlander');
        await post(server, setting(own, 'thresholds', [parameter('spo2-low-urgent', 92)]));
        assert.match(await judged(own, '2708-6', 91, 5), /^spo2-low urgent: alert raised/);
      });

      it('raises advice on the first reading past its limit when advice needs 1 of 1', async () => {
        const { patient } = await enrol(server, 'Impatient');
        await post(server, setting(patient, 'thresholds', [parameter('adviceCount', 1), parameter('adviceOf', 1)]));
        assert.match(await judged(patient, '2708-6', 94, 5), /^spo2-low advice: alert raised/);
        const [flag] = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
        assert.equal(priorityOf(flag), 'routine');
      });

      it('judges by the default limit where a setting is invalid, and says so in the AuditEvent', async () => {
        const { patient } = await enrol(server, 'Mistyped');
        const mistyped: Extension = {
          url: 'https://vigil.health/fhir/StructureDefinition/bot-parameter',
          extension: [{ url: 'name', valueString: 'spo2-low-urgent' }, { url: 'value', valueString: '90%' }],
        };
        await post(server, setting(patient, 'thresholds', [mistyped]));
        assert.match(await judged(patient, '2708-6', 91, 5), /^spo2-low urgent: alert raised, .*; spo2-low-urgent "90%" ignored \(a number from 50 to 100 %\): the limit is 92 %$/);
      });
    });

    it('ran every bot within the scopes its manifest declares', async () => {
      assert.deepEqual(await scopeRefusals(server), []);
    });
  });
}
