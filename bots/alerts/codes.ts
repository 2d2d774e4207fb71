import type { Communication } from '@medplum/fhirtypes';
import type { Severity, ThresholdRule } from '../thresholds/rules.ts';

/** Vigil's alert CodeSystem (fhir-profiles/CodeSystem-alert.json): what a Flag is about. */
export const ALERT_SYSTEM = 'https://vigil.health/fhir/CodeSystem/alert';

export const ALERT_DISPLAY = {
  'news2-low-medium': 'NEWS2 low–medium clinical risk',
  'news2-medium': 'NEWS2 medium clinical risk',
  'news2-high': 'NEWS2 high clinical risk',
  'spo2-low': 'Low oxygen saturation',
  'spo2-high': 'High oxygen saturation',
  'pulse-high': 'High pulse rate',
  'pulse-low': 'Low pulse rate',
  'bp-high': 'High blood pressure',
  'bp-low': 'Low blood pressure',
  'temperature-high': 'High body temperature',
  'temperature-low': 'Low body temperature',
  'respiratory-rate-high': 'High respiratory rate',
  'respiratory-rate-low': 'Low respiratory rate',
  'weight-high': 'High body weight',
  'weight-low': 'Low body weight',
  'weight-gain': 'Weight gain',
  'baseline-deviation': 'Deviation from personal baseline',
  'missed-measurement': 'Missed measurement',
  'silent-device': 'Silent device',
  'custom-rule': 'Custom rule',
} as const;
export type AlertCode = keyof typeof ALERT_DISPLAY;

/**
 * The threshold bot's rules to alert codes: the one place they meet. Keyed by every rule there can
 * be, so a rule without a code does not compile. Systolic and diastolic share `bp-high` and
 * `bp-low`, so a blood pressure gives one Flag however it is out of range.
 */
export const THRESHOLD_ALERT: Readonly<Record<ThresholdRule, AlertCode>> = {
  'spo2-low': 'spo2-low',
  'spo2-high': 'spo2-high',
  'pulse-high': 'pulse-high',
  'pulse-low': 'pulse-low',
  'systolic-high': 'bp-high',
  'diastolic-high': 'bp-high',
  'systolic-low': 'bp-low',
  'diastolic-low': 'bp-low',
  'temperature-high': 'temperature-high',
  'temperature-low': 'temperature-low',
  'respiratoryRate-high': 'respiratory-rate-high',
  'respiratoryRate-low': 'respiratory-rate-low',
  'weight-high': 'weight-high',
  'weight-low': 'weight-low',
  'weight-gain': 'weight-gain',
};

/** Communication.priority, which doubles as the alert's severity: it only ever escalates. */
export type Priority = NonNullable<Communication['priority']>;
export const PRIORITY_RANK: Record<Priority, number> = { routine: 0, urgent: 1, asap: 2, stat: 3 };

export const SEVERITY_PRIORITY: Record<Severity, Priority> = { advice: 'routine', urgent: 'urgent' };

/** Alert parameters every alerting bot accepts (bots/README.md). */
export const ALERT_DEFAULTS = {
  /** A Flag ends once its condition has been clear this long (measured in reading time). */
  clearAfterMinutes: 60,
  /** No second Communication for the same patient, rule and priority within these windows. */
  suppressUrgentMinutes: 240,
  suppressAdviceMinutes: 1440,
} as const;
