import type { Basic, Extension, Goal, Patient } from '@medplum/fhirtypes';
import type { Bot, FhirClient, Parameters } from './manifest.ts';

/**
 * Per-organisation and per-patient bot settings are `Basic` resources (see bots/README.md):
 * code = BOT_CODE_SYSTEM|<bot>, subject = the Organization or Patient, and the extensions below.
 * The patient's settings override their managing organisation's, which override the manifest.
 * The patient's active `Goal`s are settings too: personal ranges and targets.
 */
export const BOT_CODE_SYSTEM = 'https://vigil.health/fhir/CodeSystem/bot';
export const ENABLED_URL = 'https://vigil.health/fhir/StructureDefinition/bot-enabled';
export const PARAMETER_URL = 'https://vigil.health/fhir/StructureDefinition/bot-parameter';

export interface BotSettings {
  enabled: boolean;
  parameters: Parameters;
  /** The patient's active Goals; none without a patient. */
  goals: Goal[];
}

/** One bot's settings for one patient (or none): a run that was not given them, or an operation. */
export async function resolveSettings(fhir: FhirClient, bot: Bot, patientId: string | undefined): Promise<BotSettings> {
  return (await settingsLookup(fhir, [bot], [patientId]))(bot, patientId);
}

/**
 * The settings of each of the bots for each of the patients, read at once: their Patients (for the
 * managing organisation) in one search, every applicable `Basic` in another and their active Goals
 * in a third, however many.
 */
export async function settingsLookup(
  fhir: FhirClient,
  bots: readonly Bot[],
  patientIds: readonly (string | undefined)[],
): Promise<(bot: Bot, patientId: string | undefined) => BotSettings> {
  const ids = [...new Set(patientIds.filter((id): id is string => id !== undefined))];
  const organisationOf = new Map<string, string>();
  const found: Basic[] = [];
  const goals = new Map<string, Goal[]>();
  if (ids.length > 0) {
    for (const patient of await fhir.search<Patient>('Patient', { _id: ids.join(','), _count: String(ids.length) })) {
      const organisation = patient.managingOrganization?.reference;
      if (organisation?.startsWith('Organization/')) organisationOf.set(patient.id as string, organisation);
    }
    const subjects = [...ids.map((id) => `Patient/${id}`), ...new Set(organisationOf.values())];
    const codes = bots.map((b) => `${BOT_CODE_SYSTEM}|${b.name}`);
    for await (const page of fhir.searchPages<Basic>('Basic', { code: codes.join(','), subject: subjects.join(','), _count: '500' })) found.push(...page);
    const patients = ids.map((id) => `Patient/${id}`).join(',');
    for await (const page of fhir.searchPages<Goal>('Goal', { patient: patients, 'lifecycle-status': 'active', _count: '500' })) {
      for (const goal of page) {
        const patient = goal.subject?.reference ?? '';
        goals.set(patient, [...(goals.get(patient) ?? []), goal]);
      }
    }
  }
  return (bot, patientId) => {
    const settings = { enabled: true, parameters: { ...bot.defaults }, goals: goals.get(`Patient/${patientId}`) ?? [] };
    if (patientId === undefined) return settings;
    const organisation = organisationOf.get(patientId);
    const applicable = found.filter((b) => {
      const subject = b.subject?.reference;
      const forBot = b.code.coding?.some((c) => c.system === BOT_CODE_SYSTEM && c.code === bot.name);
      return forBot && (subject === `Patient/${patientId}` || (organisation !== undefined && subject === organisation));
    });
    // organisation first, so the patient's own settings win
    applicable.sort((a, b) => Number(a.subject?.reference?.startsWith('Patient/')) - Number(b.subject?.reference?.startsWith('Patient/')));
    for (const basic of applicable) apply(settings, basic.extension ?? []);
    return settings;
  };
}

function apply(settings: { enabled: boolean; parameters: Record<string, string | number | boolean> }, extensions: Extension[]): void {
  for (const ext of extensions) {
    if (ext.url === ENABLED_URL && typeof ext.valueBoolean === 'boolean') settings.enabled = ext.valueBoolean;
    if (ext.url !== PARAMETER_URL) continue;
    const name = ext.extension?.find((e) => e.url === 'name')?.valueString;
    const v = ext.extension?.find((e) => e.url === 'value');
    const value = v?.valueDecimal ?? v?.valueInteger ?? v?.valueBoolean ?? v?.valueString ?? v?.valueCode;
    if (name && value !== undefined) settings.parameters[name] = value;
  }
}
