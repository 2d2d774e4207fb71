import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createPatient, deteriorationAt, EPISODE, readingsAt, runSimulator, SIMULATOR_SYSTEM, VITAL_KINDS, vitalsAt,
  type SimulatedPatient, type Vitals,
} from '../src/simulator/index.ts';
import { builtin } from './ingest/helpers.ts';
import { DRIVERS, freePort, request, useServer } from './support.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2024, 4, 1);

/** Every reading of every kind, every `step` ms over `span` from T0. */
function trace(patient: SimulatedPatient, span: number, step: number) {
  const out = [];
  for (let at = T0; at < T0 + span; at += step) for (const kind of VITAL_KINDS) out.push(...readingsAt(patient, kind, at));
  return out;
}

const mean = (patients: SimulatedPatient[], at: (day: number) => number, key: keyof Vitals) => {
  let sum = 0;
  for (const p of patients) for (let day = 0; day < 7; day++) sum += vitalsAt(p, at(day))[key];
  return sum / (patients.length * 7);
};

describe('simulator: the reading generator', () => {
  const patients = Array.from({ length: 20 }, (_, i) => createPatient(i, { seed: 42 }));

  it('is deterministic for a seed, and the seed matters', () => {
    const again = createPatient(3, { seed: 42 });
    assert.deepEqual(again, patients[3]);
    assert.deepEqual(trace(again, HOUR, 30_000), trace(patients[3], HOUR, 30_000));
    assert.notDeepEqual(trace(createPatient(3, { seed: 43 }), HOUR, 30_000), trace(patients[3], HOUR, 30_000));
    assert.equal(again.patientKey, 'sim-patient-0004', 'identity comes from the index, not the seed');
    assert.equal(createPatient(3, { seed: 43 }).deviceId, 'sim-device-0004');
  });

  it('keeps normal traces in physiological ranges, with a day/night rhythm and a few missing readings', () => {
    const ranges: Record<string, [number, number]> = {
      'heart-rate': [40, 130], spo2: [92, 100], 'respiratory-rate': [8, 24], systolic: [90, 175],
      diastolic: [45, 105], 'body-temperature': [35.5, 37.8], steps: [0, 150],
    };
    let readings = 0;
    for (const p of patients) {
      for (const r of trace(p, DAY, 5 * 60_000)) {
        readings++;
        const [low, high] = ranges[r.type];
        assert.ok(r.value >= low && r.value <= high, `${r.type} ${r.value} outside [${low}, ${high}] for ${p.patientKey} at ${r.timestamp}`);
      }
    }
    const expected = patients.length * (DAY / (5 * 60_000)) * (VITAL_KINDS.length + 1); // blood pressure is two messages
    assert.ok(readings < expected && readings > 0.9 * expected, `about 3% missing: ${readings} of ${expected}`);
    const night = (day: number) => T0 + day * DAY + 3 * HOUR;
    const afternoon = (day: number) => T0 + day * DAY + 16 * HOUR;
    assert.ok(mean(patients, night, 'heartRate') < mean(patients, afternoon, 'heartRate') - 5);
    assert.ok(mean(patients, night, 'systolic') < mean(patients, afternoon, 'systolic') - 10);
    assert.equal(mean(patients, night, 'stepsPerMinute'), 0);
  });

  it('moves every vital the wrong way during a deterioration episode, and back', () => {
    const p = { ...createPatient(7, { seed: 42 }), episodes: [{ start: T0 + 14 * HOUR, severity: 1 }] };
    const before = vitalsAt(p, T0 + 14 * HOUR - 60_000);
    const peak = vitalsAt(p, T0 + 14 * HOUR + EPISODE.rampMs + 60_000);
    const after = vitalsAt(p, T0 + 15 * HOUR);
    assert.ok(peak.heartRate > before.heartRate + 30, 'heart rate rises');
    assert.ok(peak.respiratoryRate > before.respiratoryRate + 10, 'respiratory rate rises');
    assert.ok(peak.spo2 < before.spo2 - 7, 'SpO2 falls');
    assert.ok(peak.systolic < before.systolic - 30 && peak.diastolic < before.diastolic - 15, 'blood pressure falls');
    assert.ok(peak.temperature > 38.5, 'fever');
    assert.equal(deteriorationAt(p, T0 + 15 * HOUR), 0);
    assert.ok(Math.abs(after.heartRate - before.heartRate) < 25, 'recovered');
  });

  it('spends about the requested share of time in random deterioration episodes', () => {
    const p = createPatient(1, { seed: 42, deteriorate: 0.1 });
    let deteriorating = 0;
    let samples = 0;
    for (let at = T0; at < T0 + 60 * DAY; at += 60_000, samples++) if (deteriorationAt(p, at) > 0) deteriorating++;
    assert.ok(Math.abs(deteriorating / samples - 0.1) < 0.03, `${deteriorating / samples}`);
    assert.equal(deteriorationAt(createPatient(1, { seed: 42 }), T0), 0, 'none by default');
  });

  it('writes messages the vigil-generic mapping accepts', () => {
    const mapping = builtin('vigil-generic');
    for (const r of trace(patients[0], HOUR, 10 * 60_000)) {
      const { measurements, rejections } = mapping.normalize(r);
      assert.deepEqual(rejections, [], JSON.stringify(r));
      assert.equal(measurements.length, 1, JSON.stringify(r));
    }
  });
});

for (const driver of DRIVERS) {
  describe(`simulator against a running Vigil (${driver})`, async () => {
    const mqttPort = await freePort();
    const s = useServer(driver, { MQTT_PORT: String(mqttPort) });

    const enrolled = async (key: string) => {
      const bundle = (await request('GET', `${s.fhir}/Patient?identifier=${SIMULATOR_SYSTEM}|${key}`)).body;
      assert.equal(bundle.entry?.length, 1, `exactly one Patient ${key}`);
      return bundle.entry[0].resource.id as string;
    };

    it('enrols its patients and streams their readings over HTTP', async () => {
      const simulator = await runSimulator({ url: s.base, credentials: { clientId: s.clientId, clientSecret: s.clientSecret }, patients: 3, rate: 60, durationSeconds: 2, seed: 7, deteriorate: 0.5 });
      const stats = await simulator.done;
      assert.ok(stats.sent > 60, JSON.stringify(stats));
      assert.deepEqual([stats.rejected, stats.failed], [0, 0]);
      for (const p of simulator.patients) {
        const patientId = await enrolled(p.patientKey);
        const device = (await request('GET', `${s.fhir}/Device?identifier=${SIMULATOR_SYSTEM}|${p.deviceId}`)).body.entry[0].resource;
        assert.equal(device.patient.reference, `Patient/${patientId}`);
        // Bots may add Observations of their own (NEWS2 scores); the device's are the ingested ones.
        const observations = (await request('GET', `${s.fhir}/Observation?patient=Patient/${patientId}&device=Device/${device.id}&_count=200`)).body.entry ?? [];
        assert.ok(observations.length > 5, `${p.patientKey}: ${observations.length} Observations`);
      }
    });

    it('re-enrols idempotently and publishes over MQTT', async () => {
      const simulator = await runSimulator({ url: s.base, credentials: { clientId: s.clientId, clientSecret: s.clientSecret }, patients: 4, rate: 40, durationSeconds: 1, seed: 7, transport: 'mqtt', mqttUrl: `mqtt://127.0.0.1:${mqttPort}` });
      const stats = await simulator.done;
      assert.ok(stats.sent > 20 && stats.failed === 0, JSON.stringify(stats));
      const newcomer = await enrolled('sim-patient-0004');
      for (const key of ['sim-patient-0001', 'sim-patient-0002', 'sim-patient-0003']) await enrolled(key);
      const observations = (await request('GET', `${s.fhir}/Observation?patient=Patient/${newcomer}`)).body.entry ?? [];
      assert.ok(observations.length > 0, 'the MQTT readings were stored by the time their PUBACKs came');
    });
  });
}
