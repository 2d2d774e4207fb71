import type { Device, Goal, Observation, Reference, Resource } from '@medplum/fhirtypes';

/** Search parameters as a FHIR query string has them: repeated names are ANDed, commas OR. */
export type SearchParams = Record<string, string | string[]>;

/**
 * What a bot may do with FHIR. Vigil implements it on its own store (same validation and change
 * events as REST), and `restClient` on any FHIR server's REST API (bots on an external server).
 */
export interface FhirClient {
  read<T extends Resource>(resourceType: T['resourceType'], id: string): Promise<T>;
  /** A version of the resource (`_history/{versionId}`); a deleted or unknown one fails (410, 404). */
  vread<T extends Resource>(resourceType: T['resourceType'], id: string, versionId: string): Promise<T>;
  /** The first page of matches (pass `_count` for more than the server default). */
  search<T extends Resource>(resourceType: T['resourceType'], params: SearchParams): Promise<T[]>;
  /** Every match, one page at a time (`_count` sets the page size): sweeps and whole days of readings. */
  searchPages<T extends Resource>(resourceType: T['resourceType'], params: SearchParams): AsyncIterable<T[]>;
  /**
   * `Observation/$lastn`: the newest `max` (default 1) Observations of each code among those the
   * parameters match; they must name the patient or subject.
   */
  lastn(params: SearchParams): Promise<Observation[]>;
  create<T extends Resource>(resource: T): Promise<T>;
  /** With `ifMatch`, a concurrent change makes the write fail (412) instead of being overwritten. */
  update<T extends Resource>(resource: T, options?: { ifMatch?: string }): Promise<T>;
  /** Conditional create (If-None-Exist): the one match of `criteria` if there is one, else a new resource. */
  createIfNoneExist<T extends Resource>(resource: T, criteria: string): Promise<{ resource: T; created: boolean }>;
}

export type Interaction = 'create' | 'update' | 'delete';

/**
 * A committed change, as the store's change feed or the subscription outbox reports it; or, with
 * interaction `sweep`, a resource a scheduled sweep visits (at its current version).
 */
export interface Change {
  interaction: Interaction | 'sweep';
  resourceType: string;
  id: string;
  versionId: string;
}

/**
 * What a bot runs on: committed changes of one resource type, optionally meeting R4 criteria; or
 * those a SubscriptionTopic's triggers match (its resource types, interactions and conditions).
 */
export type BotTrigger = (ResourceTrigger | TopicTrigger) & {
  /**
   * A further test of a resource that met the criteria or topic, with the patient's settings, for
   * what they cannot say (the custom rules in force; a reading no limit of the patient's concerns).
   * Like them, a resource it refuses makes no run and leaves no AuditEvent.
   */
  accepts?(resource: Resource, fhir: FhirClient, settings: RunSettings): Promise<boolean>;
};

export interface ResourceTrigger {
  resourceType: string;
  /** R4 Subscription criteria (`Observation?code=…`); the resource must match it for the bot to run. */
  criteria?: string;
  /** Default: create and update. */
  interactions?: readonly Interaction[];
  topic?: undefined;
}

export interface TopicTrigger {
  /**
   * Canonical URL of a SubscriptionTopic of the server the bot acts on: Vigil's own
   * (`fhir-profiles/Basic-topic-*.json`), or an external server's, which notifies the bot of its matches.
   */
  topic: string;
  resourceType?: undefined;
  criteria?: undefined;
  interactions?: undefined;
}

/**
 * A periodic sweep, for what no change announces (a measurement that never came, a device gone
 * quiet): every `everyMs`, one run per resource that `search` finds.
 */
export interface BotSchedule {
  everyMs: number;
  /** The resources a sweep visits, as a search: `Device?status=active`. */
  search: string;
}

export type Parameters = Readonly<Record<string, string | number | boolean>>;

/** A bot's settings for the patient a run is about (bots/runtime/settings.ts). */
export interface RunSettings {
  /** The manifest's defaults overridden by organisation, then patient settings. */
  parameters: Parameters;
  /** The patient's active Goals (personal ranges and targets). */
  goals: readonly Goal[];
}

export interface BotEvent<T extends Resource = Resource> extends RunSettings {
  interaction: Change['interaction'];
  /** The triggering resource, at the version the change names (a sweep: the current version). */
  resource: T;
  /** The bot's own Device: author of what it writes. */
  agent: Reference<Device>;
  /** Aborted when the run times out; the client refuses further calls after that. */
  signal: AbortSignal;
}

/**
 * `success`: the bot did its job (which may be writing nothing); `skipped`: the trigger was not
 * for it (not an input, too few readings); `rejected`: the input is unusable and was not acted on.
 */
export interface BotResult {
  outcome: 'success' | 'skipped' | 'rejected';
  message?: string;
}

export interface Bot {
  /** Stable identifier: job ids, the bot's Device and settings are keyed by it. */
  name: string;
  title: string;
  /** Runs on committed changes matching it. */
  trigger?: BotTrigger;
  /** Runs on a schedule. A bot has a trigger, a schedule, or both. */
  schedule?: BotSchedule;
  /**
   * What the bot's code may touch, as SMART v2 system scopes (`system/Observation.s`,
   * `system/Flag.cus`): its runs' client refuses anything else with a 403 (bots/runtime/scopes.ts).
   * The narrowest its code uses; what the host does for it (reading the trigger, settings, its Device) needs none.
   */
  scopes: readonly string[];
  timeoutMs: number;
  /** Attempts before the job is dead-lettered; default 3. */
  attempts?: number;
  defaults: Parameters;
  /**
   * For a bot that assesses a state (a patient's latest vitals) rather than each trigger: the state
   * a trigger is about and the time it brings it to. A run whose trigger a newer one of the same
   * state follows (enqueued later, at its time or up to five minutes after) is left to that one,
   * which reads what it would have; under a backlog, a patient's queued readings make one
   * assessment, not one each.
   */
  coalesce?(resource: Resource): { key: string; at: number } | undefined;
  handler(event: BotEvent, fhir: FhirClient): Promise<BotResult>;
}

export function numberParameter(parameters: Parameters, name: string): number {
  const value = parameters[name];
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`bot parameter ${name} must be a number, not ${JSON.stringify(value)}`);
  return value;
}
