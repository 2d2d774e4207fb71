import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CareTeam, Communication, Flag, Patient, Practitioner } from '@medplum/fhirtypes';
import { DRIVERS, useServer } from '../support.ts';
import { enrol, eventually, post, search } from './helpers.ts';
import { botRuns, createAll, put, ranOn, reading, scopeRefusals } from './fixtures.ts';

const PRIORITY = 'https://vigil.health/fhir/StructureDefinition/alert-priority';
const SNOOZE = 'https://vigil.health/fhir/StructureDefinition/alert-snoozed-until';
const priorityOf = (flag: Flag) => flag.extension?.find((e) => e.url === PRIORITY)?.valueCode;
const MIN = 60_000;

/** Alerts a clinician has handled: acknowledged (ended) Flags and snoozed ones. */
for (const driver of DRIVERS) {
  describe(`alerts handled by clinicians (${driver})`, () => {
    const server = useServer(driver);
    const flags = (patient: string) => search<Flag>(server, `Flag?patient=Patient/${patient}&_sort=_lastUpdated`);
    const notices = (patient: string) => search<Communication>(server, `Communication?subject=Patient/${patient}&_sort=sent`);
    /** Posts a pulse reading and waits for the threshold bot to have judged it. */
    const pulse = async (patient: string, value: number, minutesAgo: number) => {
      const o = await post(server, reading(patient, '8867-4', value, Date.now() - minutesAgo * MIN));
      const [run] = await ranOn(server, `Observation/${o.id}`, 'thresholds');
      return { observation: o, run };
    };

    it('a burst of readings for one patient: every run succeeds on its first attempt, into one Flag', async () => {
      const { patient } = await enrol(server, 'Burst');
      // one transaction, so the runs start together and contend for the patient's Flag
      const burst = await createAll(server, Array.from({ length: 12 }, (_, i) => reading(patient, '8867-4', 135 + i, Date.now() - (12 - i) * MIN)));
      for (const o of burst) await ranOn(server, `Observation/${o.id}`, 'thresholds');
      const runs = (await Promise.all(burst.map((o) => botRuns(server, `Observation/${o.id}`, 'thresholds')))).flat();
      assert.deepEqual(runs.map((r) => r.outcome), burst.map(() => '0'), runs.map((r) => r.outcomeDesc).join('; '));
      const active = (await flags(patient)).filter((f) => f.status === 'active');
      assert.equal(active.length, 1);
      assert.equal((await notices(patient)).length, 1);
    });

    it('a new episode after acknowledgement opens a new Flag, re-alerting only on escalation', async () => {
      const { patient } = await enrol(server, 'Acknowledged');
      await pulse(patient, 115, 30);
      await pulse(patient, 118, 25);
      const [first] = await flags(patient);
      assert.equal(priorityOf(first), 'routine');
      assert.equal((await notices(patient)).length, 1);

      // the clinician acknowledges: the Flag ends
      await put(server, { ...first, status: 'inactive' });
      const { run } = await pulse(patient, 119, 15);
      assert.match(run.outcomeDesc ?? '', /pulse-high advice: alert raised, care team suppressed/);
      const [ended, second] = await flags(patient);
      assert.equal(ended.id, first.id);
      assert.equal(ended.status, 'inactive');
      assert.equal(ended.identifier?.[0].system, 'urn:vigil:alert-ended');
      assert.equal(second.status, 'active');
      assert.notEqual(second.id, first.id);
      assert.equal((await notices(patient)).length, 1, 'no re-alert within the suppression window');

      // escalation overrides suppression
      await pulse(patient, 135, 13);
      const escalated = await eventually(async () => {
        const f = (await flags(patient)).find((x) => x.id === second.id);
        return priorityOf(f as Flag) === 'urgent' ? f : undefined;
      }, 'the escalated Flag');
      assert.equal(escalated.status, 'active');
      const sent = await notices(patient);
      assert.deepEqual(sent.map((c) => c.priority), ['routine', 'urgent']);
      assert.equal(sent[1].about?.[0].reference, `Flag/${second.id}`);
    });

    it('a snoozed Flag takes new evidence silently until it escalates', async () => {
      // no care team yet: the first alert tells no one
      const patient = await post<Patient>(server, { resourceType: 'Patient', name: [{ family: 'Snoozed' }] });
      const id = patient.id as string;
      await pulse(id, 115, 30);
      const { run } = await pulse(id, 118, 25);
      assert.match(run.outcomeDesc ?? '', /care team no-care-team/);
      const [flag] = await flags(id);
      const until = new Date(Date.now() + 2 * 60 * MIN).toISOString();
      await put(server, { ...flag, extension: [...(flag.extension ?? []), { url: SNOOZE, valueDateTime: until }] });
      const practitioner = await post<Practitioner>(server, { resourceType: 'Practitioner', name: [{ family: 'Dr Snooze' }] });
      await post<CareTeam>(server, { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${id}` }, participant: [{ member: { reference: `Practitioner/${practitioner.id}` } }] });

      // new evidence, past the refresh interval: the Flag is updated, nobody is told
      const later = await pulse(id, 119, 15);
      assert.match(later.run.outcomeDesc ?? '', /alert updated, care team snoozed/);
      const [updated] = await flags(id);
      assert.ok(updated.extension?.some((e) => e.valueReference?.reference === `Observation/${later.observation.id}`));
      assert.equal(updated.extension?.find((e) => e.url === SNOOZE)?.valueDateTime, until);
      assert.equal((await notices(id)).length, 0);

      // escalation overrides the snooze, and ends it
      const worse = await pulse(id, 135, 13);
      assert.match(worse.run.outcomeDesc ?? '', /alert escalated, care team sent/);
      const [escalated] = await flags(id);
      assert.equal(priorityOf(escalated), 'urgent');
      assert.equal(escalated.extension?.find((e) => e.url === SNOOZE), undefined);
      const sent = await notices(id);
      assert.deepEqual(sent.map((c) => [c.priority, c.recipient?.[0].reference]), [['urgent', `Practitioner/${practitioner.id}`]]);
    });

    it('ran every bot within the scopes its manifest declares', async () => {
      assert.deepEqual(await scopeRefusals(server), []);
    });
  });
}
