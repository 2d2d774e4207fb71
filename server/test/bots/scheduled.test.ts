import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { CarePlan, Communication, Device, Flag, Observation } from '@medplum/fhirtypes';
import { addDays, dayBounds, dayOf } from '../../../bots/calendar/zone.ts';
import { DRIVERS, useServer, type TestServer } from '../support.ts';
import { enrol, eventually, post, search } from './helpers.ts';
import { botRuns, createAll, put, ranOn, reading, scopeRefusals } from './fixtures.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAILY = 'https://vigil.health/fhir/CodeSystem/daily-summary';

/** Runs a scheduled bot's sweep now and waits until it has written `until` (checked after each run). */
async function sweep<T>(server: TestServer, bot: string, until: () => Promise<T | undefined>, what: string): Promise<T> {
  const host = server.vigil.bots?.host;
  assert.ok(host, 'bots run in this Vigil');
  await host.sweep(bot);
  return eventually(until, what);
}

const alertCode = (flag: Flag) => flag.code?.coding?.[0].code;

/** The scheduled bots: personal baseline, measurement reminders, silent device. */
for (const driver of DRIVERS) {
  describe(`scheduled bots (${driver})`, () => {
    const server = useServer(driver);

    describe('personal baseline', () => {
      // the newest complete day, as the bot computes it (settleHours 2, UTC)
      let lastDay = '';
      beforeEach(() => void (lastDay = addDays(dayOf(Date.now() - 2 * HOUR, 'UTC'), -1)));
      /** Four pulse readings a day for `values.length` days ending on lastDay; the day's resting HR is the lowest. */
      const pulseDays = (patient: string, values: number[]) =>
        values.flatMap((v, i) => {
          const { start } = dayBounds(addDays(lastDay, i - values.length + 1), 'UTC');
          return [3, 9, 15, 21].map((h, k) => reading(patient, '8867-4', v + k * 5, start + h * HOUR));
        });
      const dailyValues = (patient: string) => search<Observation>(server, `Observation?subject=Patient/${patient}&code=${DAILY}|resting-heart-rate&_sort=date&_count=100`);

      it('stores a daily resting heart rate and alerts on a day 3 robust SD above the 28-day baseline', async () => {
        const { patient, practitioner } = await enrol(server, 'Baseline');
        await createAll(server, pulseDays(patient, [60, 61, 59, 60, 62, 60, 58, 61, 60, 75]));
        const flag = await sweep(server, 'baseline', async () => (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0], 'the baseline Flag');
        const days = await dailyValues(patient);
        assert.deepEqual(days.map((d) => d.valueQuantity?.value), [60, 61, 59, 60, 62, 60, 58, 61, 60, 75]);
        assert.equal(days[9].effectivePeriod?.start, new Date(dayBounds(lastDay, 'UTC').start).toISOString());
        assert.deepEqual(days[9].code.coding?.map((c) => c.code), ['resting-heart-rate', '40443-4']);
        assert.equal(days[9].note?.[0].text, `10th percentile of 4 readings on ${lastDay}`);
        assert.equal(alertCode(flag), 'baseline-deviation');
        assert.equal(flag.code?.text, 'Deviation from personal baseline: resting heart rate');
        assert.ok(flag.extension?.some((e) => e.valueReference?.reference === `Observation/${days[9].id}`));
        const [notice] = await search<Communication>(server, `Communication?subject=Patient/${patient}`);
        assert.equal(notice.priority, 'routine');
        assert.deepEqual(notice.recipient?.map((r) => r.reference), [`Practitioner/${practitioner}`]);
        assert.match(notice.payload?.[0].contentString ?? '', new RegExp(`Resting heart rate 75 /min on ${lastDay} is \\d+\\.\\d robust SD above the personal baseline 60 /min \\(median of 9 days`));

        // a second sweep finds the days done: nothing new
        // the run's AuditEvent is written once the run is over, after the Flag
        const before = (await ranOn(server, `Patient/${patient}`, 'baseline')).length;
        await server.vigil.bots?.host.sweep('baseline');
        await new Promise((r) => setTimeout(r, 1_000));
        assert.equal((await dailyValues(patient)).length, 10);
        assert.equal((await search(server, `Flag?patient=Patient/${patient}`)).length, 1);
        assert.equal((await botRuns(server, `Patient/${patient}`, 'baseline')).length, before, 'a sweep that writes nothing leaves no AuditEvent');
      });

      it('learns quietly until 7 days of data precede the day', async () => {
        const { patient } = await enrol(server, 'Learning');
        await createAll(server, pulseDays(patient, [60, 61, 59, 60, 62, 60, 90]));
        await sweep(server, 'baseline', async () => ((await dailyValues(patient)).length === 7 ? true : undefined), 'the daily values');
        const [run] = await ranOn(server, `Patient/${patient}`, 'baseline');
        assert.match(run.outcomeDesc ?? '', /pulse: learning \(6 of 7 days\)/);
        assert.equal((await search(server, `Flag?patient=Patient/${patient}`)).length, 0);
      });

      it('retracts the alert a reading entered in error caused, and recomputes its day without it', async () => {
        const { patient } = await enrol(server, 'Corrected');
        // the newest day reads 62, 67, 72, 77 and a stray 45: its resting heart rate is 45
        const [stray] = await createAll(server, [reading(patient, '8867-4', 45, dayBounds(lastDay, 'UTC').start + 12 * HOUR), ...pulseDays(patient, [60, 61, 59, 60, 62, 60, 58, 61, 60, 62])]);
        const flag = await sweep(server, 'baseline', async () => (await search<Flag>(server, `Flag?patient=Patient/${patient}`)).find((f) => alertCode(f) === 'baseline-deviation'), 'the baseline Flag');
        const day = (await dailyValues(patient)).at(-1) as Observation;
        assert.equal(day.valueQuantity?.value, 45);
        assert.ok(flag.extension?.some((e) => e.valueReference?.reference === `Observation/${day.id}`));

        await put(server, { ...stray, status: 'entered-in-error' });
        const [run] = await ranOn(server, `Observation/${stray.id}`, 'baseline');
        assert.match(run.outcomeDesc ?? '', new RegExp(`^entered in error: pulse on ${lastDay}: now 62, retracted 1 alert\\(s\\); pulse: within baseline`));
        const [retracted] = await search<Flag>(server, `Flag?_id=${flag.id}`);
        assert.equal(retracted.status, 'entered-in-error');
        const [notice] = await search<Communication>(server, `Communication?subject=Patient/${patient}`);
        assert.equal(notice.status, 'entered-in-error');
        const corrected = (await dailyValues(patient)).at(-1) as Observation;
        assert.deepEqual([corrected.id, corrected.valueQuantity?.value, corrected.note?.[0].text], [day.id, 62, `10th percentile of 4 readings on ${lastDay}`]);
        assert.equal((await search<Flag>(server, `Flag?patient=Patient/${patient}`)).filter((f) => f.status === 'active').length, 0);
      });
    });

    describe('measurement reminders', () => {
      it('reminds the patient of a missed measurement and tells the care team after three in a row', async () => {
        const { patient } = await enrol(server, 'Forgetful');
        const now = Date.now();
        // due daily 90 minutes ago (UTC): today's is past its hour of grace, and the three before it were missed
        const due = new Date(now - 90 * MIN).toISOString().slice(11, 16);
        const plan = await post<CarePlan>(server, {
          resourceType: 'CarePlan',
          status: 'active',
          intent: 'plan',
          subject: { reference: `Patient/${patient}` },
          period: { start: new Date(now - 3.5 * 24 * HOUR).toISOString() },
          activity: [{
            detail: {
              status: 'scheduled',
              code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }], text: 'blood pressure' },
              scheduledTiming: { repeat: { timeOfDay: [`${due}:00`] } },
            },
          }],
        });
        const communications = () => search<Communication>(server, `Communication?subject=Patient/${patient}&_sort=sent`);
        const sent = await sweep(server, 'reminders', async () => {
          const found = await communications();
          return found.length === 2 ? found : undefined;
        }, 'the reminder and the care team notice');
        const reminder = sent.find((c) => c.category?.[0].coding?.[0].code === 'reminder') as Communication;
        assert.deepEqual(reminder.recipient, [{ reference: `Patient/${patient}` }]);
        assert.equal(reminder.basedOn?.[0].reference, `CarePlan/${plan.id}`);
        assert.match(reminder.payload?.[0].contentString ?? '', new RegExp(`^Reminder: your blood pressure measurement planned for ${due} on \\d{4}-\\d\\d-\\d\\d has not arrived yet\\. Please take it now\\.$`));
        const [flag] = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
        assert.equal(alertCode(flag), 'missed-measurement');
        const notice = sent.find((c) => c.category?.[0].coding?.[0].code === 'alert') as Communication;
        assert.match(notice.payload?.[0].contentString ?? '', /3 planned blood pressure measurements in a row did not arrive/);
        assert.equal(notice.recipient?.[0].reference?.startsWith('Practitioner/'), true);

        // sweeping again sends nothing twice
        await server.vigil.bots?.host.sweep('reminders');
        await new Promise((r) => setTimeout(r, 1_000));
        assert.equal((await communications()).length, 2);

        // yesterday's measurement turns up (late, but in its window): the notice ends
        const yesterday = Date.parse(`${new Date(now - 90 * MIN - 24 * HOUR).toISOString().slice(0, 10)}T${due}:00Z`) + 30 * MIN;
        await post(server, {
          ...reading(patient, '8480-6', 128, yesterday),
          code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] },
          valueQuantity: undefined,
          component: [
            { code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity: { value: 128, unit: 'mm[Hg]', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
            { code: { coding: [{ system: 'http://loinc.org', code: '8462-4' }] }, valueQuantity: { value: 82, unit: 'mm[Hg]', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
          ],
        });
        const ended = await sweep(server, 'reminders', async () => {
          const [f] = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
          return f.status === 'inactive' ? f : undefined;
        }, 'the ended notice');
        assert.ok(ended.period?.end);
      });
    });

    describe('silent device', () => {
      /** A Device of the patient that reported `count` times, `gap` apart, the last `ago` before now. */
      async function deviceWithReports(patient: string, count: number, gap: number, ago: number): Promise<Device> {
        const device = await post<Device>(server, { resourceType: 'Device', status: 'active', deviceName: [{ name: 'Test wearable', type: 'user-friendly-name' }], patient: { reference: `Patient/${patient}` } });
        const now = Date.now();
        await createAll(server, Array.from({ length: count }, (_, i) => reading(patient, '8867-4', 70, now - ago - i * gap, { device: { reference: `Device/${device.id}` } })));
        return device;
      }

      it('raises a technical alert for a wearable quiet for 6 hours, and ends it when it reports again', async () => {
        const { patient } = await enrol(server, 'Unplugged');
        const device = await deviceWithReports(patient, 10, MIN, 7 * HOUR);
        const flag = await sweep(server, 'silent-device', async () => (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0], 'the silent-device Flag');
        assert.equal(alertCode(flag), 'silent-device');
        assert.equal(flag.category?.[0].coding?.[0].code, 'admin');
        assert.equal(flag.code?.text, 'Silent device: Test wearable');
        assert.ok(flag.extension?.some((e) => e.valueReference?.reference === `Device/${device.id}`));
        const [notice] = await eventually(async () => {
          const found = await search<Communication>(server, `Communication?subject=Patient/${patient}`);
          return found.length ? found : undefined;
        }, 'the Communication');
        assert.match(notice.payload?.[0].contentString ?? '', /^Silent device: Test wearable: Test wearable has sent nothing since .* \(7\.0 h ago\); it usually reports every 1 min\./);

        await post(server, reading(patient, '8867-4', 72, Date.now(), { device: { reference: `Device/${device.id}` } }));
        const ended = await sweep(server, 'silent-device', async () => {
          const [f] = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
          return f.status === 'inactive' ? f : undefined;
        }, 'the ended Flag');
        assert.ok(ended.period?.end);
      });

      it('leaves alone a device that reports twice a day', async () => {
        const { patient } = await enrol(server, 'Cuff');
        // the cuff first, so the sweep queues its run before the wearable's
        const cuff = await deviceWithReports(patient, 6, 12 * HOUR, 7 * HOUR);
        const wearable = await deviceWithReports(patient, 10, MIN, 7 * HOUR);
        await sweep(server, 'silent-device', async () => (await search<Flag>(server, `Flag?patient=Patient/${patient}`))[0], 'the wearable Flag');
        await new Promise((r) => setTimeout(r, 1_000));
        const flags = await search<Flag>(server, `Flag?patient=Patient/${patient}`);
        assert.deepEqual(flags.map((f) => f.extension?.some((e) => e.valueReference?.reference === `Device/${wearable.id}`)), [true]);
        assert.equal((await botRuns(server, `Device/${cuff.id}`, 'silent-device')).length, 0);
      });
    });

    it('ran every bot within the scopes its manifest declares', async () => {
      assert.deepEqual(await scopeRefusals(server), []);
    });
  });
}
