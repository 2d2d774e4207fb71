import { enrol } from './enrol.ts';
import { createPatient, readingsAt, type GenericReading, type SimulatedPatient, type VitalKind } from './generator.ts';
import { httpSender, mqttSender, type Sender } from './senders.ts';
import { anonymous, bearer, type ClientCredentials } from './token.ts';

export interface SimulatorOptions {
  /** Vigil's base URL: enrolment through `/fhir/R4`, readings through `/ingest` (HTTP transport). */
  url: string;
  /** An OAuth client allowed system/Patient.crs, system/Device.crs and system/Observation.c. */
  credentials?: ClientCredentials;
  patients: number;
  /** Readings per second, all patients together; a blood-pressure pair is one reading. */
  rate: number;
  transport?: 'http' | 'mqtt';
  /** The broker for the MQTT transport. */
  mqttUrl?: string;
  /** Unset: runs until stopped. */
  durationSeconds?: number;
  /** About this share of each patient's time is spent in a deterioration episode (0–1). */
  deteriorate?: number;
  seed?: number;
  /** Readings are sent as one request (or publish) this often. */
  batchMs?: number;
  /** Problems and milestones, one line each. */
  log?: (line: string) => void;
}

export interface SimulatorStats {
  /** Messages (one per value; a blood-pressure reading is two) by fate. */
  generated: number;
  sent: number;
  /** Of those sent, dead-lettered by Vigil (known over HTTP only). */
  rejected: number;
  /** In batches that could not be delivered. */
  failed: number;
  /** Readings skipped as a wearable would miss them. */
  missing: number;
}

export interface Simulator {
  readonly patients: readonly SimulatedPatient[];
  /** Live counters. */
  readonly stats: Readonly<SimulatorStats>;
  /** Settles when the duration is over or `stop` was called, and every batch has been answered. */
  readonly done: Promise<SimulatorStats>;
  stop(): Promise<SimulatorStats>;
}

/** A wearable's cadence: heart rate most often, blood pressure and temperature least. */
const CYCLE: readonly VitalKind[] = [
  'heart-rate', 'spo2', 'respiratory-rate', 'steps', 'heart-rate', 'spo2', 'body-temperature',
  'heart-rate', 'respiratory-rate', 'blood-pressure', 'heart-rate', 'spo2', 'respiratory-rate', 'steps',
];
const MAX_IN_FLIGHT = 4;
const MAX_BATCH = 2000;
/** Beyond this backlog (Vigil or the broker down) the oldest readings are dropped. */
const MAX_PENDING = 100_000;

/**
 * Enrols the simulated patients (idempotently), then streams their readings through the
 * `vigil-generic` mapping at the given total rate, batched every `batchMs`.
 */
export async function runSimulator(options: SimulatorOptions): Promise<Simulator> {
  const { patients: count, rate, deteriorate = 0, seed = 1, batchMs = 250, log = () => {} } = options;
  if (!Number.isInteger(count) || count < 1) throw new RangeError('patients must be a positive integer');
  if (!(rate > 0)) throw new RangeError('rate must be positive');
  if (!(deteriorate >= 0 && deteriorate <= 1)) throw new RangeError('deteriorate must be between 0 and 1');
  // The viewer's night is the patients' night.
  const utcOffsetMinutes = -new Date().getTimezoneOffset();
  const patients = Array.from({ length: count }, (_, i) => createPatient(i, { seed, deteriorate, utcOffsetMinutes }));
  const base = options.url.replace(/\/+$/, '');
  const auth = options.credentials ? bearer(base, options.credentials) : anonymous;
  await enrol(`${base}/fhir/R4`, patients, auth);
  log(`enrolled ${count} simulated patients (identifier system urn:vigil:simulator)`);
  const sender: Sender = options.transport === 'mqtt'
    ? await mqttSender(options.mqttUrl ?? 'mqtt://127.0.0.1:1883', options.credentials, log)
    : httpSender(base, auth);

  const stats: SimulatorStats = { generated: 0, sent: 0, rejected: 0, failed: 0, missing: 0 };
  const pending: GenericReading[] = [];
  const inFlight = new Set<Promise<void>>();
  let lastError: string | undefined;
  let cursor = 0;
  let due = 0;
  let last = Date.now();

  const flush = () => {
    while (pending.length > 0 && inFlight.size < MAX_IN_FLIGHT) {
      const batch = pending.splice(0, MAX_BATCH);
      const sending: Promise<void> = sender.send(batch).then(
        (rejected) => {
          stats.sent += batch.length;
          stats.rejected += rejected ?? 0;
          lastError = undefined;
        },
        (err: unknown) => {
          stats.failed += batch.length;
          const message = (err as Error).message;
          if (message !== lastError) log(`sending readings failed: ${message}`);
          lastError = message;
        },
      ).finally(() => {
        inFlight.delete(sending);
        flush();
      });
      inFlight.add(sending);
    }
  };

  const tick = () => {
    const now = Date.now();
    due += (rate * (now - last)) / 1000;
    const n = Math.floor(due);
    due -= n;
    for (let k = 0; k < n; k++) {
      const patient = patients[cursor % count] as SimulatedPatient;
      // Patients start at different points of the cycle, so blood pressures do not all come at once.
      const kind = CYCLE[(Math.floor(cursor / count) + patient.index * 5) % CYCLE.length] as VitalKind;
      cursor++;
      const messages = readingsAt(patient, kind, Math.round(last + ((k + 1) / n) * (now - last)));
      if (messages.length === 0) stats.missing++;
      stats.generated += messages.length;
      pending.push(...messages);
    }
    last = now;
    if (pending.length > MAX_PENDING) stats.failed += pending.splice(0, pending.length - MAX_PENDING).length;
    flush();
  };

  let finish: (stats: SimulatorStats) => void = () => {};
  const done = new Promise<SimulatorStats>((resolve) => (finish = resolve));
  let timer: NodeJS.Timeout | undefined;
  let stopping: Promise<SimulatorStats> | undefined;
  const stop = () => (stopping ??= (async () => {
    clearInterval(interval);
    clearTimeout(timer);
    tick();
    while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    await sender.close();
    finish({ ...stats });
    return { ...stats };
  })());
  const interval = setInterval(tick, batchMs);
  if (options.durationSeconds !== undefined) timer = setTimeout(stop, options.durationSeconds * 1000);
  return { patients, stats, done, stop };
}
