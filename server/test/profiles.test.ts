import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { CodeSystem, Communication, Device, Flag, Observation, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { BAND_DISPLAY, NEWS2_RISK_SYSTEM } from '../../bots/news2/codes.ts';
import { loadDefinitions } from '../src/definitions.ts';
import { conformanceResources, getProfile, loadProfiles, validateAgainstProfiles } from '../src/profiles.ts';

const SD = 'https://vigil.health/fhir/StructureDefinition/';
const OBSERVATION = `${SD}vigil-device-observation`;
const DEVICE = `${SD}vigil-wearable-device`;
const FLAG = `${SD}vigil-alert-flag`;
const COMMUNICATION = `${SD}vigil-alert-communication`;
const ALERT = 'https://vigil.health/fhir/CodeSystem/alert';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const loinc = (code: string) => ({ coding: [{ system: LOINC, code }] });
const ucum = (value: number, code: string) => ({ value, unit: code, system: UCUM, code });
const VITAL_SIGNS = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] };

const heartRate: Observation = {
  resourceType: 'Observation',
  meta: { profile: [OBSERVATION] },
  identifier: [{ system: 'urn:vigil:ingest', value: 'a1b2' }],
  status: 'final',
  category: [VITAL_SIGNS],
  code: loinc('8867-4'),
  subject: { reference: 'Patient/p1' },
  effectiveDateTime: '2025-03-01T08:00:00Z',
  valueQuantity: ucum(72, '/min'),
  device: { reference: 'Device/d1' },
};

const bloodPressure: Observation = {
  ...heartRate,
  code: loinc('85354-9'),
  effectivePeriod: { start: '2025-03-01T08:00:00Z', end: '2025-03-01T08:01:00Z' },
  effectiveDateTime: undefined,
  valueQuantity: undefined,
  component: [
    { code: loinc('8480-6'), valueQuantity: ucum(128, 'mm[Hg]') },
    { code: loinc('8462-4'), valueQuantity: ucum(82, 'mm[Hg]') },
  ],
};

const wearable: Device = {
  resourceType: 'Device',
  meta: { profile: [DEVICE] },
  identifier: [{ system: 'urn:ietf:rfc:7042', value: '00-1A-7D-DA-71-13' }],
  status: 'active',
};

const flag: Flag = {
  resourceType: 'Flag',
  meta: { profile: [FLAG] },
  status: 'active',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'clinical' }] }],
  code: { coding: [{ system: ALERT, code: 'spo2-low' }], text: 'SpO2 91 % is at or below 92 %' },
  subject: { reference: 'Patient/p1' },
  period: { start: '2025-03-01T08:00:00Z' },
  author: { reference: 'Device/news2-bot' },
};

const communication: Communication = {
  resourceType: 'Communication',
  meta: { profile: [COMMUNICATION] },
  status: 'completed',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'alert' }] }],
  priority: 'urgent',
  subject: { reference: 'Patient/p1' },
  recipient: [{ reference: 'CareTeam/ct1' }],
  about: [{ reference: 'Flag/f1' }, { reference: 'Observation/o1' }],
  payload: [{ contentString: 'SpO2 91 % is at or below 92 %' }],
};

/** A copy without undefined keys, as it would arrive in JSON. */
function json<T extends Resource>(resource: T): T {
  return JSON.parse(JSON.stringify(resource)) as T;
}

/** Each issue as `expression code`, invariants as `expression key`. */
function violations(resource: Resource, profiles?: string[]): string[] {
  return validateAgainstProfiles(json(resource), profiles).map((i) => {
    const key = i.code === 'invariant' ? /: (vigil-[\w-]+): /.exec(i.diagnostics ?? '')?.[1] : i.code;
    assert.equal(i.severity, 'error');
    return `${i.expression?.[0]} ${key}`;
  });
}

/** The same resource passes R4 base validation and, with the generated snapshot, @medplum/core's profile validation. */
function assertValid(resource: Resource): void {
  assert.deepEqual(violations(resource), []);
  const copy = json(resource);
  validateResource(copy);
  validateResource(copy, { profile: getProfile(copy.meta?.profile?.[0] as string) });
}

before(() => {
  loadDefinitions();
  loadProfiles();
});

describe('Vigil conformance resources', () => {
  it('are valid R4, and each profile has a generated snapshot', () => {
    const resources = conformanceResources();
    assert.deepEqual(resources.map((r) => `${r.resourceType}/${r.id}`).sort(), [
      'CodeSystem/alert', 'CodeSystem/daily-summary', 'CodeSystem/news2-risk',
      'StructureDefinition/acknowledgement', 'StructureDefinition/alert-rule-scope', 'StructureDefinition/alert-snoozed-until', 'StructureDefinition/ingest-reading-time',
      'StructureDefinition/vigil-alert-communication', 'StructureDefinition/vigil-alert-flag', 'StructureDefinition/vigil-alert-rule',
      'StructureDefinition/vigil-device-observation', 'StructureDefinition/vigil-wearable-device',
      'ValueSet/alert', 'ValueSet/news2-risk', 'ValueSet/vital-signs',
    ]);
    for (const r of resources) {
      assert.doesNotThrow(() => validateResource(r), `${r.url}`);
      if (r.resourceType === 'StructureDefinition') {
        assert.ok((r.snapshot?.element?.length ?? 0) > (r.differential?.element?.length ?? 0), `${r.url} has a snapshot`);
        assert.ok(r.url?.endsWith(`/${r.id}`));
      }
    }
  });

  it('look up profiles by canonical URL, with or without a version', () => {
    assert.equal(getProfile(OBSERVATION)?.type, 'Observation');
    assert.equal(getProfile(`${DEVICE}|0.1.0`)?.type, 'Device');
    assert.equal(getProfile('http://hl7.org/fhir/StructureDefinition/vitalsigns'), undefined);
    const snapshot = getProfile(OBSERVATION)?.snapshot?.element ?? [];
    const element = (id: string) => snapshot.find((e) => e.id === id);
    assert.equal(element('Observation.device')?.min, 1);
    assert.equal(element('Observation.category:VSCat')?.sliceName, 'VSCat');
    assert.equal(element('Observation.value[x].system')?.fixedUri, UCUM);
    assert.deepEqual(element('Observation.value[x].system')?.base, { path: 'Quantity.system', min: 0, max: '1' });
    assert.ok(element('Observation.value[x]')?.constraint?.some((c) => c.key === 'vigil-obs-hr' && c.source === OBSERVATION));
  });

  it('has the alert codes bots raise and the NEWS2 bands the NEWS2 bot writes', () => {
    const byId = (id: string) => conformanceResources().find((r) => r.id === id && r.resourceType === 'CodeSystem') as CodeSystem;
    assert.deepEqual(byId('alert').concept?.map((c) => c.code), [
      'news2-low-medium', 'news2-medium', 'news2-high', 'spo2-low', 'spo2-high', 'pulse-high', 'pulse-low', 'bp-high', 'bp-low',
      'temperature-high', 'temperature-low', 'respiratory-rate-high', 'respiratory-rate-low', 'weight-high', 'weight-low', 'weight-gain',
      'baseline-deviation', 'missed-measurement', 'silent-device', 'custom-rule',
    ]);
    const news2 = byId('news2-risk');
    assert.equal(news2.url, NEWS2_RISK_SYSTEM);
    assert.deepEqual(Object.fromEntries(news2.concept?.map((c) => [c.code, c.display]) ?? []), BAND_DISPLAY);
  });
});

describe('validateAgainstProfiles', () => {
  it('checks only claimed profiles Vigil knows', () => {
    const { identifier: _, device: __, ...bare } = heartRate;
    assert.deepEqual(violations({ ...bare, meta: undefined }), []);
    assert.deepEqual(violations({ ...bare, meta: { profile: ['http://hl7.org/fhir/StructureDefinition/heartrate', 'https://example.org/x'] } }), []);
    assert.deepEqual(violations({ ...bare, meta: { profile: [`${OBSERVATION}|0.1.0`] } }), ['Observation.identifier required', 'Observation.device required']);
    assert.deepEqual(violations({ ...bare, meta: undefined }, [OBSERVATION]), ['Observation.identifier required', 'Observation.device required']);
  });

  it('rejects a profile of another resource type', () => {
    assert.deepEqual(violations({ ...wearable, meta: { profile: [FLAG] } }), ['Device.meta.profile structure']);
  });
});

describe('vigil-device-observation', () => {
  it('accepts readings, panels and readings that could not be taken', () => {
    assertValid(heartRate);
    assertValid(bloodPressure);
    assertValid({ ...heartRate, code: loinc('59408-5'), valueQuantity: ucum(97, '%') });
    assertValid({ ...heartRate, code: loinc('8310-5'), valueQuantity: ucum(99.1, '[degF]') });
    assertValid({ ...heartRate, code: loinc('29463-7'), valueQuantity: ucum(172.5, '[lb_av]') });
    assertValid({ ...heartRate, category: [{ text: 'Home monitoring' }, VITAL_SIGNS] });
    assertValid({ ...heartRate, valueQuantity: undefined, dataAbsentReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'error' }] } });
  });

  it('accepts every way of saying the subject is a Patient', () => {
    const subjects: Observation['subject'][] = [
      { reference: 'https://ehr.example.org/fhir/Patient/p1' },
      { reference: 'Patient/p1/_history/2' },
      { reference: 'Patient?identifier=https://nhs.uk|943' },
      { type: 'Patient', identifier: { system: 'https://nhs.uk', value: '943' } },
    ];
    for (const subject of subjects) {
      assert.deepEqual(violations({ ...heartRate, subject }), [], JSON.stringify(subject));
    }
    const contained: Observation = { ...heartRate, contained: [{ resourceType: 'Patient', id: 'p' }], subject: { reference: '#p' } };
    assert.deepEqual(violations(contained), []);
  });

  it('requires identifier, device, subject, effective[x] and a vital-signs category', () => {
    assert.deepEqual(violations({ ...heartRate, identifier: undefined }), ['Observation.identifier required']);
    assert.deepEqual(violations({ ...heartRate, device: undefined }), ['Observation.device required']);
    assert.deepEqual(violations({ ...heartRate, subject: undefined }), ['Observation.subject required']);
    assert.deepEqual(violations({ ...heartRate, effectiveDateTime: undefined }), ['Observation.effective required']);
    assert.deepEqual(violations({ ...heartRate, category: undefined }), ['Observation.category required', 'Observation.category required']);
    assert.deepEqual(violations({ ...heartRate, category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }] }), ['Observation.category required']);
    assert.deepEqual(violations({ ...heartRate, category: [VITAL_SIGNS, VITAL_SIGNS] }), ['Observation.category structure']);
  });

  it('restricts types: a Patient subject, a Device, effective dateTime or Period, value Quantity', () => {
    assert.deepEqual(violations({ ...heartRate, subject: { reference: 'Group/g1' } }), ['Observation.subject structure']);
    assert.deepEqual(violations({ ...heartRate, subject: { display: 'Ada' } }), ['Observation.subject structure']);
    assert.deepEqual(violations({ ...heartRate, subject: { reference: '#missing' } }), ['Observation.subject structure']);
    assert.deepEqual(violations({ ...heartRate, device: { reference: 'DeviceMetric/m1' } }), ['Observation.device structure']);
    assert.deepEqual(violations({ ...heartRate, effectiveDateTime: undefined, effectiveInstant: '2025-03-01T08:00:00Z' }), ['Observation.effectiveInstant structure']);
    assert.deepEqual(violations({ ...heartRate, valueQuantity: undefined, valueString: '72' }), ['Observation.valueString structure']);
  });

  it('requires a LOINC code and a complete UCUM quantity', () => {
    assert.deepEqual(violations({ ...heartRate, code: { coding: [{ system: 'http://snomed.info/sct', code: '364075005' }] } }), ['Observation.code vigil-obs-loinc']);
    assert.deepEqual(violations({ ...heartRate, valueQuantity: { value: 72, unit: '/min', system: 'http://example.org/units', code: '/min' } }), ['Observation.valueQuantity.system value']);
    assert.deepEqual(violations({ ...heartRate, valueQuantity: { value: 72, unit: 'bpm' } }), ['Observation.valueQuantity.system required', 'Observation.valueQuantity.code required']);
    assert.deepEqual(violations({ ...heartRate, valueQuantity: { unit: '/min', system: UCUM, code: '/min' } }), ['Observation.valueQuantity.value required']);
    assert.deepEqual(violations({ ...heartRate, valueQuantity: undefined }), ['Observation vigil-obs-1']);
  });

  it('requires the unit the R4 vital-signs profiles give each code', () => {
    const cases: [string, string, string, string][] = [
      ['8867-4', '/min', 'kg', 'vigil-obs-hr'],
      ['9279-1', '/min', '%', 'vigil-obs-rr'],
      ['2708-6', '%', '1', 'vigil-obs-spo2'],
      ['59408-5', '%', '/min', 'vigil-obs-spo2'],
      ['8310-5', 'Cel', 'K', 'vigil-obs-temp'],
      ['8480-6', 'mm[Hg]', 'kPa', 'vigil-obs-pressure'],
      ['8462-4', 'mm[Hg]', 'mmHg', 'vigil-obs-pressure'],
      ['29463-7', 'kg', 'lb', 'vigil-obs-weight'],
      ['29463-7', 'g', 'mg', 'vigil-obs-weight'],
      ['8302-2', 'cm', 'm', 'vigil-obs-length'],
      ['39156-5', 'kg/m2', '%', 'vigil-obs-bmi'],
    ];
    for (const [code, good, bad, key] of cases) {
      assert.deepEqual(violations({ ...heartRate, code: loinc(code), valueQuantity: ucum(1, good) }), [], `${code} in ${good}`);
      assert.deepEqual(violations({ ...heartRate, code: loinc(code), valueQuantity: ucum(1, bad) }), [`Observation.valueQuantity ${key}`], `${code} in ${bad}`);
      const panel = { ...bloodPressure, code: loinc('85353-1'), component: [{ code: loinc(code), valueQuantity: ucum(1, bad) }] };
      assert.deepEqual(violations(panel), [`Observation.component[0] ${key.replace('vigil-obs-', 'vigil-obs-comp-')}`], `component ${code} in ${bad}`);
    }
    // A LOINC code outside the table (blood glucose) keeps any UCUM unit.
    assert.deepEqual(violations({ ...heartRate, code: loinc('2339-0'), valueQuantity: ucum(5.4, 'mmol/L') }), []);
  });

  it('requires complete panels and components', () => {
    const [systolic, diastolic] = bloodPressure.component ?? [];
    assert.deepEqual(violations({ ...bloodPressure, component: [systolic] }), ['Observation vigil-obs-bp']);
    assert.deepEqual(violations({ ...bloodPressure, component: [systolic, { ...diastolic, code: { text: 'diastolic' } }] }), ['Observation vigil-obs-bp', 'Observation.component[1].code vigil-obs-comp-loinc']);
    assert.deepEqual(violations({ ...bloodPressure, component: [systolic, { code: diastolic.code }] }), ['Observation.component[1] vigil-obs-comp-1']);
    assert.deepEqual(violations({ ...bloodPressure, component: [systolic, { ...diastolic, valueQuantity: { value: 82, unit: 'mmHg', code: 'mm[Hg]' } }] }), ['Observation.component[1].valueQuantity.system required']);
    assert.deepEqual(violations({ ...bloodPressure, component: [systolic, { ...diastolic, valueQuantity: undefined, valueInteger: 82 }] }), ['Observation.component[1].valueInteger structure']);
  });

  it('reports every violation at once', () => {
    const bad = { ...heartRate, identifier: undefined, device: undefined, valueQuantity: ucum(72, 'kg') };
    assert.deepEqual(violations(bad), ['Observation.identifier required', 'Observation.valueQuantity vigil-obs-hr', 'Observation.device required']);
  });
});

describe('vigil-wearable-device', () => {
  it('accepts a device with a full identifier and a status', () => assertValid(wearable));

  it('requires an identifier with system and value, and a status', () => {
    assert.deepEqual(violations({ ...wearable, identifier: undefined }), ['Device.identifier required']);
    assert.deepEqual(violations({ ...wearable, identifier: [{ value: 'SN-1' }] }), ['Device.identifier[0].system required']);
    assert.deepEqual(violations({ ...wearable, identifier: [...(wearable.identifier ?? []), { system: 'urn:vigil:serial' }] }), ['Device.identifier[1].value required']);
    assert.deepEqual(violations({ ...wearable, status: undefined }), ['Device.status required']);
  });
});

describe('vigil-alert-flag', () => {
  it('accepts a flag with each alert code', () => {
    assertValid(flag);
    const alert = conformanceResources().find((r) => r.url === ALERT) as CodeSystem;
    for (const { code } of alert.concept ?? []) {
      assert.deepEqual(violations({ ...flag, code: { coding: [{ system: 'http://example.org/local', code: 'x' }, { system: ALERT, code }] } }), [], code);
    }
  });

  it('requires category, an alert code, a Patient subject, period.start and a Device author', () => {
    assert.deepEqual(violations({ ...flag, category: undefined }), ['Flag.category required']);
    assert.deepEqual(violations({ ...flag, code: { coding: [{ system: ALERT, code: 'sp02-low' }] } }), ['Flag.code code-invalid']);
    assert.deepEqual(violations({ ...flag, code: { coding: [{ system: 'http://snomed.info/sct', code: '431314004' }] } }), ['Flag.code code-invalid']);
    assert.deepEqual(violations({ ...flag, code: { text: 'low SpO2' } }), ['Flag.code code-invalid']);
    assert.deepEqual(violations({ ...flag, subject: { reference: 'Location/l1' } }), ['Flag.subject structure']);
    assert.deepEqual(violations({ ...flag, period: undefined }), ['Flag.period required']);
    assert.deepEqual(violations({ ...flag, period: { end: '2025-03-02T00:00:00Z' } }), ['Flag.period.start required']);
    assert.deepEqual(violations({ ...flag, author: undefined }), ['Flag.author required']);
    assert.deepEqual(violations({ ...flag, author: { reference: 'Practitioner/pr1' } }), ['Flag.author structure']);
  });
});

describe('vigil-alert-communication', () => {
  it('accepts an alert to the care team', () => assertValid(communication));

  it('requires the alert category, priority, subject, recipient, about and payload', () => {
    assert.deepEqual(violations({ ...communication, category: undefined }), ['Communication.category required', 'Communication.category required']);
    assert.deepEqual(violations({ ...communication, category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'notification' }] }] }), ['Communication.category required']);
    assert.deepEqual(violations({ ...communication, priority: undefined }), ['Communication.priority required']);
    assert.deepEqual(violations({ ...communication, subject: undefined }), ['Communication.subject required']);
    assert.deepEqual(violations({ ...communication, subject: { reference: 'Group/g1' } }), ['Communication.subject structure']);
    assert.deepEqual(violations({ ...communication, recipient: undefined }), ['Communication.recipient required']);
    assert.deepEqual(violations({ ...communication, about: undefined }), ['Communication.about required']);
    assert.deepEqual(violations({ ...communication, payload: undefined }), ['Communication.payload required']);
  });
});

describe('the generated snapshots', () => {
  it('make @medplum/core reject what the profiles forbid by cardinality', () => {
    const rejects = (resource: Resource, profile: string) => {
      const copy = json(resource);
      validateResource(copy);
      assert.throws(() => validateResource(copy, { profile: getProfile(profile) as StructureDefinition }), OperationOutcomeError, profile);
    };
    rejects({ ...heartRate, device: undefined }, OBSERVATION);
    rejects({ ...heartRate, category: undefined }, OBSERVATION);
    rejects({ ...wearable, status: undefined }, DEVICE);
    rejects({ ...flag, author: undefined }, FLAG);
    rejects({ ...communication, payload: undefined }, COMMUNICATION);
  });
});
