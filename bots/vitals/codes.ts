import type { Acvpu, Measure } from './reading.ts';

export const LOINC = 'http://loinc.org';
export const SNOMED = 'http://snomed.info/sct';
export const UCUM = 'http://unitsofmeasure.org';

/**
 * LOINC Observation.code → measure (the FHIR R4 vital-signs profile codes, plus ACVPU and O2 flow).
 * Maps, not objects, so a code such as `constructor` finds nothing.
 */
export const MEASURE_BY_LOINC: ReadonlyMap<string, Measure> = new Map<string, Measure>(Object.entries({
  '9279-1': 'respiratoryRate',
  '2708-6': 'spo2',
  '59408-5': 'spo2', // SpO2 by pulse oximetry; the vital-signs profile carries it beside 2708-6
  '8480-6': 'systolic',
  '8462-4': 'diastolic',
  '8867-4': 'pulse',
  '8310-5': 'temperature',
  '67775-7': 'consciousness', // Level of responsiveness
  '3151-8': 'oxygenFlow', // Inhaled oxygen flow rate
  '29463-7': 'weight',
}));

/** Blood pressure panel: systolic and diastolic are its components, coded as above. */
export const BP_PANEL = '85354-9';

/** The LOINC codes a measure can arrive under; systolic and diastolic also come in the BP panel. */
export function codesOf(measure: Measure): string[] {
  const codes = [...MEASURE_BY_LOINC].filter(([, m]) => m === measure).map(([code]) => code);
  return measure === 'systolic' || measure === 'diastolic' ? [...codes, BP_PANEL] : codes;
}

/**
 * ACVPU answers, keyed `system|code`. LOINC: 67775-7's own AVPU answers, plus LA6560-2 "Confused",
 * which ACVPU implementations add for new confusion. SNOMED CT: HL7 UK's CareConnect-ACVPU-1 value
 * set. Both checked against published FHIR guides.
 */
export const ACVPU_BY_CODING: ReadonlyMap<string, Acvpu> = new Map<string, Acvpu>(Object.entries({
  [`${LOINC}|LA9340-6`]: 'alert',
  [`${LOINC}|LA6560-2`]: 'confusion',
  [`${LOINC}|LA17108-4`]: 'voice',
  [`${LOINC}|LA17107-6`]: 'pain',
  [`${LOINC}|LA9343-0`]: 'unresponsive',
  [`${SNOMED}|248234008`]: 'alert', // Mentally alert
  [`${SNOMED}|130987000`]: 'confusion', // Acute confusion
  [`${SNOMED}|300202002`]: 'voice', // Responds to voice
  [`${SNOMED}|450847001`]: 'pain', // Responds to pain
  [`${SNOMED}|422768004`]: 'unresponsive', // Unresponsive
}));
