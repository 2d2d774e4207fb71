import type { Device } from '@medplum/fhirtypes';

/** Identifier system of the bots' Devices; the value is the bot name. */
export const BOT_SYSTEM = 'https://vigil.health/fhir/bot';

/** The Device that stands for a bot: author of its Flags, agent of its AuditEvents. */
export function botDevice(name: string, title: string): Device {
  return {
    resourceType: 'Device',
    identifier: [{ system: BOT_SYSTEM, value: name }],
    status: 'active',
    deviceName: [{ name: title, type: 'user-friendly-name' }],
    type: { text: 'Vigil bot' },
  };
}
