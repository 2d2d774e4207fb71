import { evalFhirPathTyped, matchesSearchRequest, parseSearchRequest, toTypedValue } from '@medplum/core';
import type { Resource, Subscription } from '@medplum/fhirtypes';
import type { CareTeamPatients } from '../auth/care-team.ts';
import { visible } from '../auth/fhir-guard.ts';
import type { JobContext, JobQueue } from '../jobs/queue.ts';
import { quote } from '../store/columns.ts';
import { extractIndex } from '../store/extract.ts';
import type { Repository } from '../store/repository.ts';
import { historyTable } from '../store/schema.ts';
import { Params } from '../store/search/conditions.ts';
import { executeSearch } from '../store/search/execute.ts';
import { parseSearch } from '../store/search/query.ts';
import { ownerRestriction } from './access.ts';
import type { SubscriptionConfig } from './config.ts';
import type { Delivery } from './delivery.ts';
import type { Change } from './outbox.ts';
import { parseSubscription } from './parse.ts';
import type { Candidate, SubscriptionRegistry } from './registry.ts';
import { setStatus } from './status.ts';

/**
 * Handles one committed change from the outbox: activates `requested` subscriptions, and matches
 * the change against the active ones, enqueueing one delivery per matching subscription (grouped
 * by subscription, so each receives its notifications in order).
 */
export class Matcher {
  readonly #repo: Repository;
  readonly #registry: SubscriptionRegistry;
  readonly #deliveries: JobQueue<Delivery>;
  readonly #config: SubscriptionConfig;
  readonly #careTeams: CareTeamPatients;

  constructor(repo: Repository, registry: SubscriptionRegistry, deliveries: JobQueue<Delivery>, config: SubscriptionConfig, careTeams: CareTeamPatients) {
    this.#repo = repo;
    this.#careTeams = careTeams;
    this.#registry = registry;
    this.#deliveries = deliveries;
    this.#config = config;
  }

  handle = async (job: JobContext<Change>): Promise<void> => {
    const change = job.data;
    if (change.resourceType === 'Subscription') {
      this.#registry.invalidate();
      if (change.interaction !== 'delete') await this.#activate(change);
      return;
    }
    await this.#registry.refresh();
    if (!this.#registry.hasType(change.resourceType)) return;
    const current = change.interaction === 'delete' ? undefined : await this.#version(change, change.versionId);
    if (change.interaction !== 'delete' && !current) return;
    let previous: Resource | undefined | null = null;
    const loadPrevious = async (): Promise<Resource | undefined> => {
      if (previous === null) previous = change.versionId > 1 ? await this.#version(change, change.versionId - 1) : undefined;
      return previous;
    };
    const indexed = current ?? (await loadPrevious());
    const row = indexed ? extractIndex(indexed, this.#repo.baseUrl) : undefined;
    const candidates = this.#registry.candidates(change.resourceType, change.interaction, row);
    const matched = await Promise.all(candidates.map((c) => this.#matches(c, change, current, loadPrevious)));
    const subscriptions = new Set(candidates.filter((_, i) => matched[i]).map((c) => c.sub.id));
    for (const subscriptionId of subscriptions) {
      await this.#deliveries.enqueue(
        { subscriptionId, kind: 'event', focus: change },
        {
          jobId: `${subscriptionId}/${change.resourceType}/${change.id}/${change.versionId}`,
          groupKey: subscriptionId,
          attempts: this.#config.attempts,
          backoff: this.#config.backoff,
        },
      );
    }
  };

  /**
   * The trigger's search, run against the database restricted to the changed resource (the REST
   * API's own semantics, chains included) and to what the subscription's owner may read now, then
   * its FHIRPath conditions. A deleted resource is no longer searchable: its last version is tested
   * in memory instead (@medplum/core's matcher), and the owner's access on its deleted row.
   */
  async #matches({ sub, trigger }: Candidate, change: Change, current: Resource | undefined, previous: () => Promise<Resource | undefined>): Promise<boolean> {
    const restrict = await ownerRestriction(sub.owner, this.#careTeams, this.#repo.baseUrl);
    const limited = restrict?.('t', change.resourceType, new Params()) !== undefined;
    if (change.interaction === 'delete') {
      const last = await previous();
      if (!last) return false;
      if ([...trigger.search].length && !matchesSearchRequest(last, parseSearchRequest(`${change.resourceType}?${trigger.search}`))) return false;
      if (restrict && limited && !(await visible(this.#repo.db, restrict, change.resourceType, change.id))) return false;
    } else if ([...trigger.search].length || limited) {
      const params = new URLSearchParams(trigger.search);
      params.append('_id', change.id);
      params.set('_count', '1');
      params.set('_total', 'none');
      const result = await executeSearch(this.#repo.db, parseSearch(change.resourceType, params), this.#repo.baseUrl, restrict);
      if (result.matches.length === 0) return false;
    }
    if (trigger.fhirpath.length === 0) return true;
    const before = await previous();
    const variables = {
      '%current': toTypedValue(current ?? {}),
      '%previous': toTypedValue(before ?? {}),
    };
    return trigger.fhirpath.every((expression) => {
      const result = evalFhirPathTyped(expression, [toTypedValue(current ?? before ?? {})], variables);
      return result.length > 0 && result.every((r) => r.value === true);
    });
  }

  /**
   * requested → active, or error with the reason. Topic-based rest-hooks must accept a handshake
   * first: a delivery job, retried with backoff like any notification, that activates on success
   * and sets `error` after its last attempt (delivery.ts).
   */
  async #activate(change: Change): Promise<void> {
    const current = await this.#version(change, change.versionId);
    const stored = await this.#repo.readVersion('Subscription', change.id).catch(() => undefined);
    if (!current || stored?.versionId !== String(change.versionId)) return;
    const resource = current as Subscription;
    if (resource.status !== 'requested') return;
    let sub;
    try {
      sub = parseSubscription(resource, this.#config.allowPrivateEndpoints);
    } catch (err) {
      await setStatus(this.#repo, change.id, 'error', (err as Error).message, ['requested']);
      return;
    }
    if (sub.topic && sub.channel.type === 'rest-hook') {
      await this.#deliveries.enqueue(
        { subscriptionId: sub.id, kind: 'handshake' },
        {
          jobId: `${sub.id}/handshake/${change.versionId}`,
          groupKey: sub.id,
          attempts: this.#config.handshakeAttempts,
          backoff: this.#config.backoff,
        },
      );
      return;
    }
    await setStatus(this.#repo, change.id, 'active', undefined, ['requested']);
  }

  async #version(change: Change, versionId: number): Promise<Resource | undefined> {
    const rows = await this.#repo.db.query<{ content: string | null }>(
      `SELECT content FROM ${quote(historyTable(change.resourceType))} WHERE id = $1 AND version_id = $2`,
      [change.id, versionId],
    );
    return rows[0]?.content ? (JSON.parse(rows[0].content) as Resource) : undefined;
  }
}
