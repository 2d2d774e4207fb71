import { gaussian, uniform } from './random.ts';

/** What one simulated wearable reports; each kind is one reading (blood pressure: a pair of messages). */
export type VitalKind = 'heart-rate' | 'spo2' | 'respiratory-rate' | 'blood-pressure' | 'body-temperature' | 'steps';
export const VITAL_KINDS: readonly VitalKind[] = ['heart-rate', 'spo2', 'respiratory-rate', 'blood-pressure', 'body-temperature', 'steps'];

/** A message for the `vigil-generic` mapping. */
export interface GenericReading {
  deviceId: string;
  timestamp: string;
  endTimestamp?: string;
  type: 'heart-rate' | 'spo2' | 'respiratory-rate' | 'systolic' | 'diastolic' | 'body-temperature' | 'steps';
  value: number;
  unit: string;
}

/** The patient's resting daytime values. */
export interface Baseline {
  heartRate: number;
  spo2: number;
  respiratoryRate: number;
  systolic: number;
  diastolic: number;
  temperature: number;
}

/** A deterioration episode: ramps up, holds, resolves (see EPISODE). */
export interface Episode {
  /** ms since the epoch. */
  start: number;
  /** 0–1: how far the vitals move at the peak. */
  severity: number;
}

export interface SimulatedPatient {
  index: number;
  /** Identifier values (system `urn:vigil:simulator`) of the Patient and of its Device. */
  patientKey: string;
  deviceId: string;
  name: { given: string; family: string };
  gender: 'female' | 'male';
  birthDate: string;
  seed: number;
  baseline: Baseline;
  /** The patient's clock, for the day/night rhythm. */
  utcOffsetMinutes: number;
  /** The share of time spent in random deterioration episodes (0–1). */
  deteriorate: number;
  /** Episodes injected on top of the random ones. */
  episodes: Episode[];
}

/** The noise-free physiological state at one moment. */
export interface Vitals extends Baseline {
  stepsPerMinute: number;
}

const MINUTE = 60_000;
/** Deterioration takes minutes, not hours, so that a demo shows it. */
export const EPISODE = { rampMs: 3 * MINUTE, holdMs: 10 * MINUTE, recoverMs: 3 * MINUTE };
const EPISODE_MS = EPISODE.rampMs + EPISODE.holdMs + EPISODE.recoverMs;
const ACTIVITY_BLOCK_MS = 10 * MINUTE;
const MISSING = 0.03;

// Hash keys: one per independent random signal.
const KEY = { baseline: 1, episode: 2, episodeStart: 3, episodeSeverity: 4, activity: 5, activityLevel: 6, noise: 7, missing: 8, name: 9 } as const;

const GIVEN = { female: ['Ada', 'Grace', 'Mary', 'Amina', 'Sofia', 'Ingrid', 'Mei', 'Lucia'], male: ['Alan', 'Omar', 'John', 'Kenji', 'Luis', 'Tomas', 'Ravi', 'Henrik'] };
const FAMILY = ['Lovelace', 'Hopper', 'Seacole', 'Okafor', 'Rossi', 'Berg', 'Chen', 'Garcia', 'Turing', 'Haddad', 'Sato', 'Patel', 'Novak', 'Moreau'];

/** A simulated patient with a stable identity (from its index) and a physiology drawn from the seed. */
export function createPatient(index: number, options: { seed: number; deteriorate?: number; utcOffsetMinutes?: number }): SimulatedPatient {
  const seed = Math.floor(uniform(options.seed, index) * 2 ** 32);
  const draw = (field: number, low: number, high: number) => low + (high - low) * uniform(seed, KEY.baseline, field);
  const gender = uniform(seed, KEY.name, 0) < 0.5 ? 'female' : 'male';
  const number = String(index + 1).padStart(4, '0');
  const systolic = Math.round(draw(3, 115, 135));
  return {
    index,
    patientKey: `sim-patient-${number}`,
    deviceId: `sim-device-${number}`,
    name: { given: pick(GIVEN[gender], uniform(seed, KEY.name, 1)), family: pick(FAMILY, uniform(seed, KEY.name, 2)) },
    gender,
    birthDate: `${1935 + Math.floor(draw(7, 0, 60))}-${pad(1 + Math.floor(draw(8, 0, 12)))}-${pad(1 + Math.floor(draw(9, 0, 28)))}`,
    seed,
    baseline: {
      heartRate: Math.round(draw(1, 60, 80)),
      spo2: Math.round(draw(2, 96, 99)),
      systolic,
      diastolic: Math.round(Math.min(draw(4, 68, 85), systolic - 35)),
      respiratoryRate: Math.round(draw(5, 13, 17)),
      temperature: Math.round(draw(6, 36.5, 36.9) * 10) / 10,
    },
    utcOffsetMinutes: options.utcOffsetMinutes ?? 0,
    deteriorate: options.deteriorate ?? 0,
    episodes: [],
  };
}

/** How deteriorated the patient is at `at`: 0 (not at all) to 1 (a full-severity episode at its peak). */
export function deteriorationAt(patient: SimulatedPatient, at: number): number {
  let level = 0;
  for (const e of [...patient.episodes, ...randomEpisodes(patient, at)]) level = Math.max(level, e.severity * episodeShape(at - e.start));
  return level;
}

/** The patient's physiological state: day/night rhythm, activity and deterioration, without noise. */
export function vitalsAt(patient: SimulatedPatient, at: number): Vitals {
  const b = patient.baseline;
  const hour = (((at + patient.utcOffsetMinutes * MINUTE) / 3_600_000) % 24 + 24) % 24;
  const circadian = Math.cos((2 * Math.PI * (hour - 16)) / 24); // +1 at 16:00, −1 at 04:00
  const asleep = sleepiness(hour);
  const d = deteriorationAt(patient, at);
  const block = Math.floor(at / ACTIVITY_BLOCK_MS);
  const walking = uniform(patient.seed, KEY.activity, block) < 0.25;
  // Ill or asleep patients hardly walk.
  const activity = walking ? (0.5 + 0.5 * uniform(patient.seed, KEY.activityLevel, block)) * (1 - asleep) * (1 - d) : 0;
  return {
    heartRate: b.heartRate + 4 * circadian - 6 * asleep + 20 * activity + 40 * d,
    spo2: Math.min(100, b.spo2 - 0.5 * asleep - 9 * d),
    respiratoryRate: b.respiratoryRate + 0.5 * circadian - 1.5 * asleep + 4 * activity + 12 * d,
    systolic: b.systolic + 4 * circadian - 10 * asleep + 10 * activity - 35 * d,
    diastolic: b.diastolic + 3 * circadian - 7 * asleep + 5 * activity - 20 * d,
    temperature: b.temperature + 0.25 * circadian - 0.15 * asleep + 0.1 * activity + 2.2 * d,
    stepsPerMinute: activity > 0 ? 70 + 50 * activity : 8 * (1 - asleep) * (1 - d),
  };
}

/**
 * What the wearable reports for one kind of reading at `at`: measured values with sensor noise,
 * or nothing when the reading is missing (loose strap, motion). Pure: same patient and time, same
 * messages, so a re-sent reading is recognised as the same one.
 */
export function readingsAt(patient: SimulatedPatient, kind: VitalKind, at: number): GenericReading[] {
  const k = VITAL_KINDS.indexOf(kind);
  if (uniform(patient.seed, KEY.missing, k, at) < MISSING) return [];
  const v = vitalsAt(patient, at);
  const noise = (sd: number, channel = 0) => sd * gaussian(patient.seed, KEY.noise, k, channel, at);
  const base = { deviceId: patient.deviceId, timestamp: new Date(at).toISOString() };
  switch (kind) {
    case 'heart-rate':
      return [{ ...base, type: kind, value: Math.round(Math.max(30, v.heartRate + noise(2))), unit: '/min' }];
    case 'spo2':
      return [{ ...base, type: kind, value: Math.round(Math.min(100, v.spo2 + noise(0.6))), unit: '%' }];
    case 'respiratory-rate':
      return [{ ...base, type: kind, value: Math.round(Math.max(4, v.respiratoryRate + noise(0.8))), unit: '/min' }];
    case 'blood-pressure':
      return [
        { ...base, type: 'systolic', value: Math.round(v.systolic + noise(3, 0)), unit: 'mm[Hg]' },
        { ...base, type: 'diastolic', value: Math.round(v.diastolic + noise(2.5, 1)), unit: 'mm[Hg]' },
      ];
    case 'body-temperature':
      return [{ ...base, type: kind, value: Math.round((v.temperature + noise(0.08)) * 10) / 10, unit: 'Cel' }];
    case 'steps': {
      // The last whole minute: re-reporting a minute lands on the same Observation.
      const end = Math.floor(at / MINUTE) * MINUTE;
      const steps = vitalsAt(patient, end - MINUTE / 2).stepsPerMinute;
      return [{
        deviceId: patient.deviceId,
        timestamp: new Date(end - MINUTE).toISOString(),
        endTimestamp: new Date(end).toISOString(),
        type: kind,
        value: Math.max(0, Math.round(steps * (1 + 0.1 * gaussian(patient.seed, KEY.noise, k, end)))),
        unit: '{steps}',
      }];
    }
  }
}

/**
 * Time is cut into episode-long windows and an episode starts in each with probability
 * `deteriorate`, so about that share of the time is spent deteriorating. Only the current and the
 * previous window can hold an episode still running at `at`.
 */
function randomEpisodes(patient: SimulatedPatient, at: number): Episode[] {
  if (patient.deteriorate <= 0) return [];
  const episodes: Episode[] = [];
  const current = Math.floor(at / EPISODE_MS);
  for (const w of [current - 1, current]) {
    if (uniform(patient.seed, KEY.episode, w) >= patient.deteriorate) continue;
    episodes.push({
      start: (w + uniform(patient.seed, KEY.episodeStart, w)) * EPISODE_MS,
      severity: 0.6 + 0.4 * uniform(patient.seed, KEY.episodeSeverity, w),
    });
  }
  return episodes;
}

/** 0 → 1 over the ramp, 1 while it holds, → 0 over the recovery. */
function episodeShape(sinceStart: number): number {
  const { rampMs, holdMs, recoverMs } = EPISODE;
  if (sinceStart < 0 || sinceStart >= EPISODE_MS) return 0;
  if (sinceStart < rampMs) return sinceStart / rampMs;
  if (sinceStart < rampMs + holdMs) return 1;
  return 1 - (sinceStart - rampMs - holdMs) / recoverMs;
}

/** 1 asleep (23:30–06:00), 0 awake, with an hour's transition either side. */
function sleepiness(hour: number): number {
  if (hour >= 23.5 || hour < 6) return 1;
  if (hour >= 22.5) return hour - 22.5;
  if (hour < 7) return 7 - hour;
  return 0;
}

const pick = <T>(items: readonly T[], u: number): T => items[Math.floor(u * items.length)] as T;
const pad = (n: number) => String(n).padStart(2, '0');
