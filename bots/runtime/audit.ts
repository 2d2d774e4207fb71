import type { AuditEvent, AuditEventEntity, Device, Reference, Resource } from '@medplum/fhirtypes';
import { BOT_CODE_SYSTEM } from './settings.ts';
import type { Bot, BotResult, Change } from './manifest.ts';

export interface Written {
  resource: Resource;
  interaction: 'create' | 'update';
}

export interface RunRecord {
  bot: Bot;
  agent: Reference<Device>;
  change: Change;
  patientId?: string;
  /** A result, or the error that ended the run. */
  result: BotResult | { error: string };
  written: readonly Written[];
  attempt: number;
}

/** AuditEvent.outcome: 0 success, 4 minor failure (input rejected), 8 serious failure (the bot failed). */
const OUTCOME = { success: '0', skipped: '0', rejected: '4', error: '8' } as const;

/** One AuditEvent per bot run: the bot as agent, the trigger, the outcome and what the run wrote. */
export function runAuditEvent(run: RunRecord): AuditEvent {
  const failed = 'error' in run.result;
  const outcome = failed ? OUTCOME.error : OUTCOME[(run.result as BotResult).outcome];
  const message = failed ? (run.result as { error: string }).error : (run.result as BotResult).message;
  const { change } = run;
  const entity: AuditEventEntity[] = [
    {
      what: { reference: `${change.resourceType}/${change.id}` },
      role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '4', display: 'Domain Resource' },
      description: 'trigger',
      detail: [{ type: 'versionId', valueString: change.versionId }, { type: 'interaction', valueString: change.interaction }],
    },
    ...(run.patientId
      ? [{ what: { reference: `Patient/${run.patientId}` }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1', display: 'Patient' } }]
      : []),
    ...run.written.map((w) => ({
      what: { reference: `${w.resource.resourceType}/${w.resource.id}` },
      description: w.interaction === 'create' ? 'created' : 'updated',
      detail: [{ type: 'versionId', valueString: w.resource.meta?.versionId ?? '' }],
    })),
  ];
  return {
    resourceType: 'AuditEvent',
    type: { system: 'https://vigil.health/fhir/CodeSystem/audit-event-type', code: 'bot-run', display: 'Bot run' },
    subtype: [{ system: BOT_CODE_SYSTEM, code: run.bot.name, display: run.bot.title }],
    action: 'E',
    recorded: new Date().toISOString(),
    outcome,
    ...(message ? { outcomeDesc: message.slice(0, 1000) } : {}),
    agent: [{ who: run.agent, requestor: false, name: `${run.bot.title} (attempt ${run.attempt})` }],
    source: { observer: run.agent, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
    entity,
  };
}
