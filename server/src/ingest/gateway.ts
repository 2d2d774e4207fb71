import type { Observation } from '@medplum/fhirtypes';
import { Counter, Histogram, type Registry } from 'prom-client';
import { allowsAll, writeAllowed, type AccessPolicy } from '../auth/access-policy.ts';
import { FhirError } from '../fhir/outcome.ts';
import { newResourceId } from '../store/ids.ts';
import type { Repository } from '../store/repository.ts';
import { validate } from '../store/validation.ts';
import { DeadLetters } from './dead-letters.ts';
import type { IdentityResolver } from './identity.ts';
import type { MappingStore } from './mappings.ts';
import { IDENTIFIER_SYSTEM, groupByIdentity, mergeObservation, type CompiledMapping, type IdentityGroup } from './template/index.ts';

export type Outcome = 'created' | 'updated' | 'unchanged';

export type MessageResult =
  | { status: 'ok'; observations: { id: string; outcome: Outcome }[]; warnings?: string[] }
  | { status: 'rejected'; reason: string; deadLetterId: string }
  /** Not the sender's to write: dropped, not kept as a dead letter. */
  | { status: 'forbidden'; reason: string };

/** Why a message was not stored; `forbidden` ones are not dead-lettered. */
interface Problem {
  reason: string;
  forbidden?: true;
}

interface Pending {
  observation: Observation;
  key: string;
  messages: Set<number>;
  /** False once merged with another reading of the batch: the merge result was not validated. */
  validated: boolean;
  /** When the newest of the batch's readings in it was taken (epoch ms): ingest latency runs from there. */
  newest: number;
}

/**
 * Device messages to stored Observations: template mapping, identity resolution, then one
 * database transaction that creates new Observations and merges re-sent or grouped ones by their
 * deterministic identifier. Bad messages are dead-lettered without affecting the good ones, and
 * the answer comes only after the good ones are committed. With the sender's access policy, each
 * message is also checked against it: a device writes only for the patients its token reaches.
 */
export class IngestGateway {
  readonly #repo: Repository;
  readonly #mappings: MappingStore;
  readonly #identities: IdentityResolver;
  readonly deadLetters: DeadLetters;
  readonly #metrics: ReturnType<typeof ingestMetrics>;

  constructor(repo: Repository, mappings: MappingStore, identities: IdentityResolver, registry: Registry) {
    this.#repo = repo;
    this.#mappings = mappings;
    this.#identities = identities;
    this.deadLetters = new DeadLetters(repo.db);
    this.#metrics = ingestMetrics(registry);
  }

  /** undefined when the mapping does not exist. */
  async ingest(mappingName: string, messages: unknown[], access?: AccessPolicy): Promise<MessageResult[] | undefined> {
    const mapping = await this.#mappings.compiled(mappingName);
    if (!mapping) return undefined;
    this.#metrics.messages.inc({ mapping: mappingName }, messages.length);
    const rejected = new Map<number, string>();
    const forbidden = new Map<number, string>();
    const warnings = new Map<number, string[]>();
    const pending = new Map<string, Pending>();
    const issued = new Date().toISOString();

    const byMessage = messages.map((message, i) => {
      const { measurements, rejections } = mapping.normalize(message);
      if (measurements.length === 0) rejected.set(i, rejections.map((r) => r.reason).join('; ') || 'No template matched the message');
      else if (rejections.length) warnings.set(i, rejections.map((r) => r.reason));
      this.#metrics.measurements.inc({ mapping: mappingName }, measurements.length);
      return groupByIdentity(measurements);
    });
    await this.#identities.revalidate(mapping.identityResolution, byMessage.flat());
    for (const [i, groups] of byMessage.entries()) {
      if (rejected.has(i)) continue;
      const problem = await this.#place(mapping, groups, i, issued, pending, access);
      if (problem) (problem.forbidden ? forbidden : rejected).set(i, problem.reason);
    }
    const outcomes = await this.#write(pending, rejected);
    const dead = [...rejected.entries()];
    const deadIds = await this.deadLetters.add(dead.map(([i, reason]) => ({ mapping: mappingName, reason, message: messages[i] })));
    for (const [, reason] of dead) this.#metrics.rejected.inc({ mapping: mappingName, reason: reasonClass(reason) });
    if (forbidden.size) this.#metrics.rejected.inc({ mapping: mappingName, reason: 'forbidden' }, forbidden.size);
    const deadById = new Map(dead.map(([i], k) => [i, deadIds[k]]));
    // each message's Observations, in the order they were placed: one pass, not one per message
    const written = new Map<number, { id: string; outcome: Outcome }[]>();
    for (const p of pending.values()) {
      const outcome = outcomes.get(p.key) as { id: string; outcome: Outcome };
      for (const i of p.messages) {
        const list = written.get(i);
        if (list) list.push(outcome);
        else written.set(i, [outcome]);
      }
    }
    return messages.map((_, i) => {
      if (forbidden.has(i)) return { status: 'forbidden', reason: forbidden.get(i) as string };
      const reason = rejected.get(i);
      if (reason !== undefined) return { status: 'rejected', reason, deadLetterId: deadById.get(i) as string };
      return { status: 'ok', observations: written.get(i) ?? [], ...(warnings.has(i) ? { warnings: warnings.get(i) } : {}) };
    });
  }

  /** Dead-letters messages that reach no mapping's templates (an unknown mapping, too large); returns their ids. */
  async reject(mappingName: string, messages: unknown[], reason: string): Promise<string[]> {
    const ids = await this.deadLetters.add(messages.map((message) => ({ mapping: mappingName, reason, message })));
    // A name no mapping has is the sender's choice: not a label value, so that the series stay few.
    const mapping = (await this.#mappings.compiled(mappingName)) ? mappingName : '';
    this.#metrics.rejected.inc({ mapping, reason: reasonClass(reason) }, messages.length);
    return ids;
  }

  /** Resolves the message's devices and folds its Observations into the batch; returns why it cannot be. */
  async #place(
    mapping: CompiledMapping, groups: IdentityGroup[], i: number, issued: string, pending: Map<string, Pending>, access: AccessPolicy | undefined,
  ): Promise<Problem | undefined> {
    // Create mode makes Patients and Devices from what the message says: only for senders that reach every patient.
    if (access && mapping.identityResolution === 'Create' && !allowsAll(access, 'Observation', 'c')) {
      return { reason: `Mapping "${mapping.name}" creates patients: it needs system/Observation.c`, forbidden: true };
    }
    const built: { observation: Observation; newest: number }[] = [];
    for (const group of groups) {
      const identity = await this.#identities.resolve(mapping.identityResolution, group);
      if ('reject' in identity) return { reason: identity.reject };
      if (access && !writeAllowed(access, 'Observation', 'c', [identity.subject.reference as string])) {
        return { reason: `This client may not write readings of device "${group.deviceId}"`, forbidden: true };
      }
      const { device, subject, encounter } = identity;
      const { observations, newest, rejections } = mapping.toObservations(group.measurements, { issued, device, subject, encounter });
      if (rejections.length) return { reason: rejections.map((r) => r.reason).join('; ') };
      built.push(...observations.map((observation, k) => ({ observation, newest: newest[k] })));
    }
    for (const { observation } of built) {
      try {
        validate(observation);
      } catch (err) {
        if (err instanceof FhirError) return { reason: `Mapped Observation is invalid: ${err.message}` };
        throw err;
      }
    }
    for (const { observation, newest } of built) {
      const key = identifierOf(observation);
      const existing = pending.get(key);
      if (!existing) {
        pending.set(key, { observation, key, messages: new Set([i]), validated: true, newest });
      } else {
        const merged = mergeObservation(existing.observation, observation);
        if (merged.conflict) return { reason: merged.conflict };
        existing.observation = merged.observation;
        existing.messages.add(i);
        existing.validated = false;
        existing.newest = Math.max(existing.newest, newest);
      }
    }
    return undefined;
  }

  async #write(pending: Map<string, Pending>, rejected: Map<number, string>): Promise<Map<string, { id: string; outcome: Outcome }>> {
    const outcomes = new Map<string, { id: string; outcome: Outcome }>();
    if (pending.size === 0) return outcomes;
    const keys = [...pending.keys()].sort();
    await this.#repo.transaction(async (w) => {
      // Claim each reading's identity (in key order, so two batches cannot deadlock): a concurrent
      // batch holding one of them makes this wait until it commits, and then sees its reading.
      await w.sql.query('INSERT INTO ingest_identity (identifier) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [keys]);
      // One index probe per identifier. The planner takes each identifier to match 0.5% of the table,
      // so it would rather scan the whole table once (`identifier && $1`), or once per identifier
      // (a join it may reorder): ~0.5-4 s per batch at 60,000 rows, growing. OFFSET 0 keeps the
      // probe a subquery it runs for each identifier in turn.
      const rows = await w.sql.query<{ id: string; content: string }>(
        'SELECT o.id, o.content FROM unnest($1::text[]) k, LATERAL (SELECT id, content FROM "Observation" WHERE identifier @> ARRAY[k] AND NOT deleted OFFSET 0) o',
        [keys.map((k) => `${IDENTIFIER_SYSTEM}|${k}`)],
      );
      const stored = new Map(rows.map((r) => {
        const o = JSON.parse(r.content) as Observation;
        return [identifierOf(o), o];
      }));
      const creates: Pending[] = [];
      for (const p of pending.values()) {
        const existing = stored.get(p.key);
        if (!existing) {
          creates.push(p);
          continue;
        }
        const merged = mergeObservation(existing, p.observation);
        if (merged.conflict) {
          for (const i of p.messages) rejected.set(i, merged.conflict);
        } else if (merged.changed) {
          await w.update(merged.observation);
          outcomes.set(p.key, { id: existing.id as string, outcome: 'updated' });
        } else {
          outcomes.set(p.key, { id: existing.id as string, outcome: 'unchanged' });
        }
      }
      const written = await w.createMany(creates.map((p) => ({ resource: p.observation, id: newResourceId(), validated: p.validated })));
      creates.forEach((p, k) => outcomes.set(p.key, { id: written[k].resource.id as string, outcome: 'created' }));
    });
    const now = Date.now();
    for (const [key, o] of outcomes) {
      this.#metrics.observations.inc({ outcome: o.outcome });
      // Not the Observation's effective time: for an hourly or daily one, that is its bucket.
      const newest = (pending.get(key) as Pending).newest;
      if (o.outcome !== 'unchanged') this.#metrics.latency.observe(Math.max(0, (now - newest) / 1000));
    }
    return outcomes;
  }
}

function identifierOf(o: Observation): string {
  return o.identifier?.find((i) => i.system === IDENTIFIER_SYSTEM)?.value as string;
}

/** A bounded label for the rejection counter. */
function reasonClass(reason: string): string {
  if (reason.startsWith('Unknown device')) return 'unknown-device';
  if (reason.startsWith('Patient mismatch')) return 'patient-mismatch';
  if (reason.startsWith('Unknown encounter')) return 'unknown-encounter';
  if (reason.startsWith('Encounter mismatch')) return 'encounter-mismatch';
  if (reason.includes('not bound')) return 'unbound-device';
  if (reason.includes('bound to')) return 'device-bound-elsewhere';
  if (reason.startsWith('Mapped Observation is invalid')) return 'invalid-observation';
  if (reason.startsWith('No template matched')) return 'no-template';
  if (reason.startsWith('Unknown mapping')) return 'unknown-mapping';
  if (reason.startsWith('The message is') && reason.includes('more than the limit')) return 'too-large';
  return 'invalid-message';
}

function ingestMetrics(registry: Registry) {
  return {
    messages: new Counter({ name: 'vigil_ingest_messages_total', help: 'Device messages received', labelNames: ['mapping'], registers: [registry] }),
    measurements: new Counter({ name: 'vigil_ingest_measurements_total', help: 'Measurements extracted from messages', labelNames: ['mapping'], registers: [registry] }),
    observations: new Counter({ name: 'vigil_ingest_observations_total', help: 'Observations by outcome', labelNames: ['outcome'], registers: [registry] }),
    rejected: new Counter({ name: 'vigil_ingest_rejected_total', help: 'Rejected messages by reason', labelNames: ['mapping', 'reason'], registers: [registry] }),
    latency: new Histogram({
      name: 'vigil_ingest_latency_seconds',
      help: 'Device timestamp to commit',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers: [registry],
    }),
  };
}
