import type { Basic, Extension, Patient } from '@medplum/fhirtypes';
import type { Bot, FhirClient, Parameters } from './manifest.ts';

/**
 * Per-organisation and per-patient bot settings are `Basic` resources (see bots/README.md):
 * code = BOT_CODE_SYSTEM|<bot>, subject = the Organization or Patient, and the extensions below.
 * The patient's settings override their managing organisation's, which override the manifest.
 */
export const BOT_CODE_SYSTEM = 'https://vigil.health/fhir/CodeSystem/bot';
export const ENABLED_URL = 'https://vigil.health/fhir/StructureDefinition/bot-enabled';
export const PARAMETER_URL = 'https://vigil.health/fhir/StructureDefinition/bot-parameter';

export interface BotSettings {
  enabled: boolean;
  parameters: Parameters;
}

export async function resolveSettings(fhir: FhirClient, bot: Bot, patientId: string | undefined): Promise<BotSettings> {
  const settings = { enabled: true, parameters: { ...bot.defaults } };
  if (!patientId) return settings;
  const patient = await fhir.read<Patient>('Patient', patientId).catch(() => undefined);
  const organisation = patient?.managingOrganization?.reference;
  const subjects = [`Patient/${patientId}`, ...(organisation?.startsWith('Organization/') ? [organisation] : [])];
  const found = await fhir.search<Basic>('Basic', { code: `${BOT_CODE_SYSTEM}|${bot.name}`, subject: subjects.join(','), _count: '10' });
  // organisation first, so the patient's own settings win
  const ordered = found.sort((a, b) => Number(a.subject?.reference?.startsWith('Patient/')) - Number(b.subject?.reference?.startsWith('Patient/')));
  for (const basic of ordered) apply(settings, basic.extension ?? []);
  return settings;
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
