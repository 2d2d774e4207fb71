import type { Flag } from '@medplum/fhirtypes';
import pg from 'pg';
import { scoreNews2 } from '../bots/news2/score.ts';
import { createPatient, EPISODE, readingsAt, vitalsAt, type GenericReading, type SimulatedPatient, type VitalKind } from '../server/src/simulator/index.ts';
import { fmt, http, percentiles, rawCopyRate, recreateDatabase, renewToken, startServer, timeline } from './support.ts';

/**
 * `npm run bench -- alerts [--patients 500] [--rate 2] [--seconds 600] [--warmup 20] [--deteriorating 0.2] [--seed 1] [--together]`:
 * simulated wearables (server/src/simulator) stream the NEWS2 inputs in real time through
 * `/ingest/vigil-generic` into one Vigil (role all: ingest and bots, PostgreSQL, in-process queue);
 * that share of the patients gets one full-severity deterioration episode, each at its worst from
 * a moment spread over the first four fifths of the run (the last fifth leaves the latest time to
 * be alerted on). `--together` puts every episode at its worst from the first second: a cold start
 * that meets all the deteriorations at once. The run is measured after `--warmup` seconds of the
 * same stream: a Vigil in service has scored its patients before, while a fresh one scores all of
 * them for the first time at once (a NEWS2 Observation and RiskAssessment each); the warm-up's
 * alerts are reported apart, and `--warmup 0` measures the cold start. Reports:
 * - alert latency: for each Flag raised or escalated, its commit minus the commit of the newest
 *   reading among its evidence (from the history tables);
 * - recall: the injected episodes whose noise-free NEWS2 reaches 5 during the run that got a NEWS2
 *   medium or high Flag, and how long after the score reached 5 (or the run began);
 * - false alerts: every Flag, of any bot, on a patient without an injected episode, per patient-day;
 * - the raw PostgreSQL COPY of the same Observation rows, measured in the same run, as the ceiling.
 */
const PORT = 8194;
const TICK_MS = 250;
const MAX_IN_FLIGHT = 4;
/** Messages per request: a Vigil that falls behind gets its backlog in requests of this size. */
const MAX_BATCH = 2_000;
/** The NEWS2 inputs a wearable and cuff send; each patient cycles through them. */
const KINDS: readonly VitalKind[] = ['heart-rate', 'spo2', 'respiratory-rate', 'blood-pressure', 'body-temperature'];
const TRUTH_STEP_MS = 5_000;
const MEDIUM_OR_HIGH = new Set(['news2-medium', 'news2-high']);
/** The latency timeline's slices. */
const SLICE_MS = 20_000;

export async function main(args: string[]): Promise<void> {
  const opt = (name: string, fallback: number): number => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const count = opt('patients', 500);
  const rate = opt('rate', 2);
  const seconds = opt('seconds', 600);
  const warmup = opt('warmup', 20);
  const share = opt('deteriorating', 0.2);
  const seed = opt('seed', 1);
  const together = args.includes('--together');

  const url = await recreateDatabase('vigil_bench_alerts');
  // Bots run where the readings are committed (role all), on the in-process queue: one machine.
  const server = await startServer(url, PORT, { VIGIL_ROLE: 'all' });
  const fhir = `${server.base}/fhir/R4`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const patients = Array.from({ length: count }, (_, i) => createPatient(i, { seed }));
    const ids = await enrol(fhir, patients);
    const tStart = Date.now();
    const t0 = tStart + warmup * 1000;
    const deteriorating = new Set(patients.filter((p) => (p.index * 0.618034) % 1 < share).map((p) => p.index));
    const worstBy = together ? 0 : 0.8 * seconds * 1000;
    for (const p of patients) {
      if (!deteriorating.has(p.index)) continue;
      // at its worst (the end of its ramp) from a moment spread over [t0, t0 + worstBy]
      p.episodes.push({ start: t0 - EPISODE.rampMs + ((p.index * 0.414214) % 1) * worstBy, severity: 1 });
    }
    console.log(
      `bench alerts: ${fmt(count)} patients × ${rate} readings/s (${fmt(count * rate)}/s) for ${seconds} s after a ${warmup} s warm-up, ` +
        `${deteriorating.size} with an injected deterioration (${together ? 'all at their worst from the start' : 'onsets spread over the run'}); Vigil role all on PostgreSQL`,
    );

    await renewToken(server.base);
    const sent = await stream(server.base, patients, rate, tStart, warmup + seconds);
    const tEnd = Date.now();
    await settle(client);

    const flags = await flagVersions(client);
    const all = await alertLatencies(client, flags);
    const latencies = all.filter((s) => s.at >= t0);
    const warm = all.filter((s) => s.at < t0).map((s) => s.value);
    const truth = patients.filter((p) => deteriorating.has(p.index)).map((p) => ({ patient: p, ...news2Truth(p, t0, tEnd) }));
    const news2Flags = (patient: string) => flags.filter((f) => f.patient === patient && f.rule === 'news2' && MEDIUM_OR_HIGH.has(f.code));
    const detectable = truth.filter((t) => t.start !== undefined);
    const detected = detectable.filter((t) => news2Flags(ids[t.patient.index]).length > 0);
    const delays = detected.flatMap((t) => {
      const first = Math.min(...news2Flags(ids[t.patient.index]).map((f) => f.at));
      return [Math.max(0, first - Math.max(t.start as number, t0))];
    });
    const normal = patients.filter((p) => !deteriorating.has(p.index)).map((p) => ids[p.index]);
    const falseAlerts = new Set(flags.filter((f) => normal.includes(f.patient)).map((f) => f.id)).size;
    const patientDays = (normal.length * (tEnd - tStart)) / 86_400_000;
    const committed = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM "Observation" WHERE content LIKE '%"vital-signs"%'`)).rows[0].n);

    const copy = await rawCopyRate(client);
    const l = percentiles(latencies.map((s) => s.value));
    const d = percentiles(delays);
    console.log('');
    console.log(`raw PostgreSQL COPY (same Observation rows, ${fmt(copy.rows)}): ${fmt(copy.perSecond)} rows/s   <- ceiling`);
    console.log(`readings: ${fmt(sent)} messages sent (a blood pressure is two), ${fmt(committed)} Observations committed (${fmt(committed / ((tEnd - tStart) / 1000))}/s)`);
    const w = percentiles(warm);
    if (warmup > 0) console.log(`warm-up, not counted (${fmt(warmup)} s; ${fmt(warm.length)} raises and escalations)${warm.length ? `: alert latency p50 ${fmt(w.p50)} ms, p99 ${fmt(w.p99)} ms` : ''}`);
    console.log(`alert latency, reading committed → Flag committed (${fmt(latencies.length)} raises and escalations): p50 ${fmt(l.p50)} ms, p99 ${fmt(l.p99)} ms`);
    console.log(`  by ${fmt(SLICE_MS / 1000)} s of the readings' commits, p50/p99 ms: ${timeline(latencies, t0, SLICE_MS)}`);
    console.log(
      `detection: ${detected.length} of ${detectable.length} injected NEWS2 ≥ 5 episodes got a NEWS2 medium/high Flag ` +
        `(recall ${fmt(detectable.length ? (100 * detected.length) / detectable.length : 100, 1)}%); time to it p50 ${fmt(d.p50 / 1000, 1)} s, p99 ${fmt(d.p99 / 1000, 1)} s`,
    );
    console.log(`false alerts: ${falseAlerts} Flags on ${fmt(normal.length)} normal patients over ${fmt((tEnd - tStart) / 3_600_000, 2)} h = ${fmt(patientDays ? falseAlerts / patientDays : 0, 2)} per patient-day`);
  } finally {
    await client.end();
    await server.stop();
  }
}

/** Patients, their devices (identifier = the simulator's device id) and a care team each, in transactions of 100. */
async function enrol(fhir: string, patients: readonly SimulatedPatient[]): Promise<string[]> {
  const ids: string[] = [];
  const practitioner = await http('POST', `${fhir}/Practitioner`, JSON.stringify({ resourceType: 'Practitioner', name: [{ family: 'Bench' }] }));
  const practitionerId = (JSON.parse(practitioner.body) as { id: string }).id;
  for (let from = 0; from < patients.length; from += 100) {
    const chunk = patients.slice(from, from + 100);
    const entry = chunk.flatMap((p) => {
      const fullUrl = `urn:uuid:00000000-0000-4000-8000-${String(p.index).padStart(12, '0')}`;
      return [
        { fullUrl, resource: { resourceType: 'Patient', active: true, identifier: [{ system: 'urn:vigil:bench', value: p.patientKey }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Device', status: 'active', identifier: [{ system: 'urn:vigil:bench', value: p.deviceId }], patient: { reference: fullUrl } }, request: { method: 'POST', url: 'Device' } },
        {
          resource: { resourceType: 'CareTeam', status: 'active', subject: { reference: fullUrl }, participant: [{ member: { reference: `Practitioner/${practitionerId}` } }] },
          request: { method: 'POST', url: 'CareTeam' },
        },
      ];
    });
    const res = await http('POST', fhir, JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }));
    if (res.status !== 200) throw new Error(`enrolment failed: ${res.status} ${res.body.slice(0, 300)}`);
    const created = (JSON.parse(res.body) as { entry: { response: { location: string } }[] }).entry;
    for (let i = 0; i < chunk.length; i++) ids.push(created[i * 3].response.location.split('/')[1]);
  }
  return ids;
}

/** Streams `rate` readings per second per patient, in real time, batched every tick; returns the messages sent. */
async function stream(base: string, patients: readonly SimulatedPatient[], rate: number, t0: number, seconds: number): Promise<number> {
  const inFlight = new Set<Promise<void>>();
  const pending: GenericReading[] = [];
  let sent = 0;
  let resent = 0;
  let cursor = 0;
  let due = 0;
  let last = t0;
  const flush = (): void => {
    while (pending.length > 0 && inFlight.size < MAX_IN_FLIGHT) {
      const batch = pending.splice(0, MAX_BATCH);
      const request: Promise<void> = http('POST', `${base}/ingest/vigil-generic`, JSON.stringify(batch)).then(
        (res) => {
          if (res.status !== 200) throw new Error(`ingest: ${res.status} ${res.body.slice(0, 300)}`);
          sent += batch.length;
        },
        // a connection an overloaded Vigil dropped: the device sends the batch again (ingest is idempotent)
        (err: NodeJS.ErrnoException) => {
          if (!err.code) throw err;
          resent += batch.length;
          pending.unshift(...batch);
        },
      ).finally(() => inFlight.delete(request));
      inFlight.add(request);
    }
  };
  while (Date.now() < t0 + seconds * 1000) {
    const now = Date.now();
    due += (patients.length * rate * (now - last)) / 1000;
    const n = Math.floor(due);
    due -= n;
    for (let k = 0; k < n; k++) {
      const patient = patients[cursor % patients.length];
      // each patient goes round the NEWS2 inputs, starting at a different one
      const kind = KINDS[(Math.floor(cursor / patients.length) + patient.index) % KINDS.length];
      cursor++;
      // spread over the tick: two readings of a kind never share a time (and so an identifier)
      pending.push(...readingsAt(patient, kind, Math.round(last + ((k + 1) / n) * (now - last))));
    }
    last = now;
    // a Vigil that falls behind finds the readings waiting here, as a device's buffer would hold them
    flush();
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
  while (pending.length > 0 || inFlight.size > 0) {
    flush();
    await Promise.race(inFlight);
  }
  if (resent > 0) console.log(`  ${fmt(resent)} readings sent again after Vigil dropped their connection`);
  return sent;
}

/** Waits until the bots have caught up: no new AuditEvent for 5 s (at most 5 minutes). */
async function settle(client: pg.Client): Promise<void> {
  let previous = -1;
  let stableSince = Date.now();
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    const n = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM "AuditEvent"')).rows[0].n);
    if (n !== previous) {
      previous = n;
      stableSince = Date.now();
    } else if (Date.now() - stableSince > 5_000) {
      return;
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

interface FlagVersion {
  id: string;
  version: number;
  patient: string;
  rule: string;
  code: string;
  priority: string;
  /** When the version was committed (ms). */
  at: number;
  evidence: string[];
}

/** Every version of every Flag, oldest first. */
async function flagVersions(client: pg.Client): Promise<FlagVersion[]> {
  const rows = await client.query<{ id: string; version_id: number; last_updated: Date; content: string }>(
    `SELECT id, version_id, last_updated, content FROM "Flag_History" WHERE NOT deleted ORDER BY id, version_id`,
  );
  return rows.rows.map((r) => {
    const flag = JSON.parse(r.content) as Flag;
    const key = flag.identifier?.[0]?.value ?? '';
    return {
      id: r.id,
      version: r.version_id,
      patient: flag.subject?.reference?.split('/')[1] ?? '',
      rule: key.slice(key.indexOf('/') + 1),
      code: flag.code?.coding?.[0]?.code ?? '',
      priority: flag.extension?.find((e) => e.url.endsWith('/alert-priority'))?.valueCode ?? '',
      at: r.last_updated.getTime(),
      evidence: (flag.extension ?? []).flatMap((e) => (e.valueReference?.reference?.startsWith('Observation/') ? [e.valueReference.reference.slice('Observation/'.length)] : [])),
    };
  });
}

/**
 * For each raise (version 1) and escalation (a version whose priority rose): its commit time minus
 * the commit of the newest reading version among its evidence that it could have seen (a blood
 * pressure's halves arrive as two versions), as `value`, at that reading's commit (`at`). Derived
 * evidence (NEWS2 scores) is not a reading.
 */
async function alertLatencies(client: pg.Client, versions: FlagVersion[]): Promise<{ at: number; value: number }[]> {
  const RANK: Record<string, number> = { routine: 0, urgent: 1, asap: 2, stat: 3 };
  const alerting = versions.filter((v, i) => v.version === 1 || (versions[i - 1]?.id === v.id && RANK[v.priority] > RANK[versions[i - 1].priority]));
  const ids = [...new Set(alerting.flatMap((v) => v.evidence))];
  const commits = new Map<string, number[]>();
  for (let i = 0; i < ids.length; i += 10_000) {
    const rows = await client.query<{ id: string; last_updated: Date }>(
      `SELECT id, last_updated FROM "Observation_History" WHERE id = ANY($1) AND content LIKE '%"vital-signs"%'`,
      [ids.slice(i, i + 10_000)],
    );
    for (const r of rows.rows) commits.set(r.id, [...(commits.get(r.id) ?? []), r.last_updated.getTime()]);
  }
  return alerting.flatMap((v) => {
    const seen = v.evidence.flatMap((id) => (commits.get(id) ?? []).filter((t) => t <= v.at));
    if (seen.length === 0) return [];
    const at = Math.max(...seen);
    return [{ at, value: v.at - at }];
  });
}

/** When the patient's noise-free NEWS2 is 5 or more within [from, to]: its first and last such moment. */
function news2Truth(patient: SimulatedPatient, from: number, to: number): { start?: number; end?: number } {
  let start: number | undefined;
  let end: number | undefined;
  for (let t = from; t <= to; t += TRUTH_STEP_MS) {
    const v = vitalsAt(patient, t);
    const { total } = scoreNews2({
      respiratoryRate: v.respiratoryRate, spo2: v.spo2, onOxygen: false, systolic: v.systolic, pulse: v.heartRate,
      consciousness: 'alert', temperature: v.temperature, scale2: false,
    });
    if (total < 5) continue;
    start ??= t;
    end = t;
  }
  return { start, end };
}
