import type { Subscription } from '@medplum/fhirtypes';
import { getSearchParams } from '../definitions.ts';
import type { Database } from '../store/database.ts';
import { normalizeReference, type IndexRow } from '../store/extract.ts';
import { splitValues } from '../store/search/query.ts';
import { parseSubscription, type ParsedSubscription, type Trigger } from './parse.ts';
import type { Interaction } from './topics.ts';

export interface Candidate {
  sub: ParsedSubscription;
  trigger: Trigger;
  /** The trigger's search is its index key alone: a change found through that key matches the search. */
  keyOnly: boolean;
}

interface TypeIndex {
  /** param code → value → triggers whose first token/reference filter names that value. */
  keyed: Map<string, Map<string, Candidate[]>>;
  /** Triggers with no such filter: checked for every change of the type. */
  scan: Candidate[];
}

const NO_KEYS: ReadonlyMap<string, unknown> = new Map();
const REFERENCE = /^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * The active subscriptions of the database, cached per process and indexed so that a change is
 * only checked against triggers that can match it: by resource type, then by the value of one
 * plain reference or token filter of the trigger (`patient=Patient/1`, `code=…`), looked up
 * among the changed resource's own index values. The cache is reloaded whenever the Subscription
 * table changes (checked at most every `maxAgeMs`), so every replica converges within that time.
 */
export class SubscriptionRegistry {
  readonly #db: Database;
  readonly #baseUrl: string;
  readonly #allowPrivate: boolean;
  readonly #maxAgeMs: number;
  #byType = new Map<string, TypeIndex>();
  #all: ParsedSubscription[] = [];
  #byId = new Map<string, ParsedSubscription>();
  #invalid = new Map<string, string>();
  #signature = '';
  #checkedAt = 0;
  #generation = 0;
  #loading?: Promise<void>;

  constructor(db: Database, baseUrl: string, allowPrivate: boolean, maxAgeMs = 1_000) {
    this.#db = db;
    this.#baseUrl = baseUrl;
    this.#allowPrivate = allowPrivate;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Active subscriptions as of the last refresh. */
  get active(): readonly ParsedSubscription[] {
    return this.#all;
  }

  get(id: string): ParsedSubscription | undefined {
    return this.#byId.get(id);
  }

  /** Active subscriptions Vigil cannot serve (stored around validation, or refused since), each with why: left out of matching. */
  get invalid(): ReadonlyMap<string, string> {
    return this.#invalid;
  }

  hasType(type: string): boolean {
    return this.#byType.has(type);
  }

  /** Forces the next `refresh()` to reload, even one that joins a reload already under way. */
  invalidate(): void {
    this.#generation++;
    this.#checkedAt = 0;
    this.#signature = '';
  }

  async refresh(): Promise<void> {
    // a reload that began before an invalidation may have read the table as it was before the change: another follows it
    while (Date.now() - this.#checkedAt >= this.#maxAgeMs) {
      this.#loading ??= this.#reload().finally(() => {
        this.#loading = undefined;
      });
      await this.#loading;
    }
  }

  /** The search parameters (the keys) whose values `candidates` looks up for a change of this type. */
  keyedParams(type: string): ReadonlyMap<string, unknown> {
    return this.#byType.get(type)?.keyed ?? NO_KEYS;
  }

  candidates(type: string, interaction: Interaction, row: IndexRow | undefined): Candidate[] {
    const index = this.#byType.get(type);
    if (!index) return [];
    const found = new Set<Candidate>(index.scan);
    if (row) {
      for (const [code, byValue] of index.keyed) {
        const value = row[code];
        for (const v of Array.isArray(value) ? value : value == null ? [] : [value]) {
          for (const c of byValue.get(String(v)) ?? []) found.add(c);
        }
      }
    }
    return [...found].filter((c) => c.trigger.interactions.has(interaction));
  }

  async #reload(): Promise<void> {
    const generation = this.#generation;
    const [state] = await this.#db.query<{ n: number; m: string | null }>(
      'SELECT count(*)::int AS n, max(last_updated)::text AS m FROM "Subscription"',
    );
    const checkedAt = Date.now();
    const signature = `${state.n}|${state.m}`;
    if (signature === this.#signature) {
      if (generation === this.#generation) this.#checkedAt = checkedAt;
      return;
    }
    const rows = await this.#db.query<{ content: string }>(`SELECT content FROM "Subscription" WHERE NOT deleted`);
    const all: ParsedSubscription[] = [];
    const invalid = new Map<string, string>();
    const byType = new Map<string, TypeIndex>();
    const now = Date.now();
    for (const row of rows) {
      const resource = JSON.parse(row.content) as Subscription;
      if (resource.status !== 'active' || (resource.end && Date.parse(resource.end) <= now)) continue;
      let sub: ParsedSubscription;
      try {
        sub = parseSubscription(resource, this.#allowPrivate);
      } catch (err) {
        invalid.set(resource.id as string, (err as Error).message);
        continue;
      }
      all.push(sub);
      for (const trigger of sub.triggers) add(byType, sub, trigger, this.#baseUrl);
    }
    if (generation !== this.#generation) return;
    this.#all = all;
    this.#byId = new Map(all.map((sub) => [sub.id, sub]));
    this.#invalid = invalid;
    this.#byType = byType;
    this.#signature = signature;
    this.#checkedAt = checkedAt;
  }
}

function add(byType: Map<string, TypeIndex>, sub: ParsedSubscription, trigger: Trigger, baseUrl: string): void {
  const type = trigger.resourceType;
  let index = byType.get(type);
  if (!index) byType.set(type, (index = { keyed: new Map(), scan: [] }));
  const key = indexKey(trigger, baseUrl);
  if (!key) {
    index.scan.push({ sub, trigger, keyOnly: false });
    return;
  }
  const candidate = { sub, trigger, keyOnly: [...trigger.search].length === 1 };
  let byValue = index.keyed.get(key.code);
  if (!byValue) index.keyed.set(key.code, (byValue = new Map()));
  for (const v of key.values) byValue.set(v, [...(byValue.get(v) ?? []), candidate]);
}

/**
 * A filter the search SQL answers with "column contains one of these values": a reference given as
 * Type/id (preferred: a topic's own filter, such as a vital-sign category, is shared by every
 * subscription to it, the patient is not), else the first token without modifier. A resource can
 * only match the trigger if its index holds one of the values, exactly as the SQL would test it.
 */
function indexKey(trigger: Trigger, baseUrl: string): { code: string; values: string[] } | undefined {
  const params = getSearchParams(trigger.resourceType);
  let token: { code: string; values: string[] } | undefined;
  for (const [key, raw] of trigger.search) {
    const param = params.get(key);
    if (!param || raw === '') continue;
    const values = splitValues(raw).filter(Boolean);
    if (param.type === 'token') token ??= { code: key, values };
    if (param.type === 'reference') {
      const refs = values.map((v) => normalizeReference(v, baseUrl));
      if (refs.every((r) => REFERENCE.test(r))) return { code: key, values: refs };
    }
  }
  return token;
}
