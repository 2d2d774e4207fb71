import type { CodeableConcept, Observation, Quantity } from '@medplum/fhirtypes';
import { cloneJson } from './json.ts';

/**
 * FHIR R4 vital-signs conformance. Vital-sign codes get the vital-signs category; a specific
 * profile (heartrate, bp, …) is claimed only when the Observation really meets it (LOINC code,
 * valueQuantity in one of the profile's UCUM units, a subject), the generic vitalsigns profile
 * otherwise, so no Observation claims a profile it would fail.
 */

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const CATEGORY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/observation-category';
const PROFILE_BASE = 'http://hl7.org/fhir/StructureDefinition/';

const VITAL_SIGNS_CATEGORY: CodeableConcept = {
  coding: [{ system: CATEGORY_SYSTEM, code: 'vital-signs', display: 'Vital Signs' }],
  text: 'Vital Signs',
};

/** LOINC code → the R4 profile for it and the UCUM units that profile allows. */
const SPECIFIC: Readonly<Record<string, { profile: string; units: readonly string[] }>> = {
  '8867-4': { profile: 'heartrate', units: ['/min'] },
  '9279-1': { profile: 'resprate', units: ['/min'] },
  '2708-6': { profile: 'oxygensat', units: ['%'] },
  '8310-5': { profile: 'bodytemp', units: ['Cel', '[degF]'] },
  '29463-7': { profile: 'bodyweight', units: ['kg', 'g', '[lb_av]'] },
  '8302-2': { profile: 'bodyheight', units: ['cm', '[in_i]'] },
  '9843-4': { profile: 'headcircum', units: ['cm', '[in_i]'] },
  '39156-5': { profile: 'bmi', units: ['kg/m2'] },
};
const BP_PANEL = '85354-9';
const SYSTOLIC = '8480-6';
const DIASTOLIC = '8462-4';

/** R4's vital-signs value set, plus 59408-5 (SpO2 by pulse oximetry, the code oximeters report). */
const VITAL_SIGN_CODES = new Set([...Object.keys(SPECIFIC), BP_PANEL, SYSTOLIC, DIASTOLIC, '85353-1', '8478-0', '59408-5']);
const OWN_PROFILES = new Set([...Object.values(SPECIFIC).map((s) => PROFILE_BASE + s.profile), `${PROFILE_BASE}bp`, `${PROFILE_BASE}vitalsigns`]);

function loincCodes(concept: CodeableConcept | undefined): string[] {
  return (concept?.coding ?? []).filter((c) => c.system === LOINC && c.code).map((c) => c.code!);
}

function ucumQuantity(q: Quantity | undefined, units: readonly string[]): boolean {
  return q?.value !== undefined && q.system === UCUM && q.code !== undefined && units.includes(q.code) && q.unit !== undefined;
}

function componentConforms(obs: Observation, code: string): boolean {
  return (obs.component ?? []).some((c) => loincCodes(c.code).includes(code) && ucumQuantity(c.valueQuantity, ['mm[Hg]']));
}

function profileFor(obs: Observation, codes: string[]): string {
  if (codes.includes(BP_PANEL) && componentConforms(obs, SYSTOLIC) && componentConforms(obs, DIASTOLIC)) return 'bp';
  for (const code of codes) {
    const specific = SPECIFIC[code];
    if (specific && ucumQuantity(obs.valueQuantity, specific.units)) return specific.profile;
  }
  return 'vitalsigns';
}

/** Sets category and meta.profile from the Observation's content; other profiles are kept. */
export function applyVitalSigns(obs: Observation): void {
  const codes = loincCodes(obs.code);
  const vital = codes.some((c) => VITAL_SIGN_CODES.has(c));
  const others = (obs.meta?.profile ?? []).filter((p) => !OWN_PROFILES.has(p));
  // Every vital-signs profile requires a subject.
  const profiles = vital && obs.subject ? [...others, PROFILE_BASE + profileFor(obs, codes)] : others;
  if (profiles.length > 0) {
    obs.meta = { ...obs.meta, profile: profiles };
  } else if (obs.meta) {
    const meta = { ...obs.meta };
    delete meta.profile;
    if (Object.keys(meta).length > 0) obs.meta = meta;
    else delete obs.meta;
  }
  if (!vital) return;
  const hasCategory = (obs.category ?? []).some((c) => c.coding?.some((k) => k.system === CATEGORY_SYSTEM && k.code === 'vital-signs'));
  if (!hasCategory) obs.category = [cloneJson(VITAL_SIGNS_CATEGORY), ...(obs.category ?? [])];
}
