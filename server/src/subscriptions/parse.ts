import type { Extension, Subscription, SubscriptionChannel } from '@medplum/fhirtypes';
import { parseFhirPath } from '@medplum/core';
import { isKnownResourceType } from '../definitions.ts';
import { FhirError, badRequest } from '../fhir/outcome.ts';
import { parseSearch } from '../store/search/query.ts';
import { type Owner, ownerOf } from './access.ts';
import { checkEndpoint } from './endpoint.ts';
import { getTopic, type Interaction, type Topic } from './topics.ts';

/**
 * A Subscription resource read into what matching and delivery need, or refused with a 400
 * naming the problem. Classic R4 subscriptions have one trigger (their criteria); topic-based
 * ones (Backport IG) have one per topic trigger, each narrowed by the subscription's filters.
 */

export const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
export const BACKPORT_PROFILE = `${BACKPORT}backport-subscription`;
export const VIGIL_EXT = 'https://vigil.health/fhir/StructureDefinition/';
/** Vigil: which interactions notify (repeatable; default create and update). */
export const INTERACTION_EXT = `${VIGIL_EXT}subscription-interaction`;
/** Vigil: a FHIRPath condition over `%current` and `%previous` (the version before), evaluated after the criteria. */
export const FHIRPATH_EXT = `${VIGIL_EXT}subscription-fhirpath-criteria`;

export type Content = 'empty' | 'id-only' | 'full-resource';

export interface Trigger {
  resourceType: string;
  /** The search the changed resource must match (without the type); empty matches every resource of the type. */
  search: URLSearchParams;
  interactions: ReadonlySet<Interaction>;
  fhirpath: string[];
}

export interface ParsedSubscription {
  id: string;
  status: Subscription['status'];
  /** Epoch ms of `end`. */
  end?: number;
  topic?: Topic;
  triggers: Trigger[];
  channel: {
    type: 'rest-hook' | 'websocket';
    endpoint?: string;
    headers: [string, string][];
    /** MIME type of the payload as given, parameters included: the notifications' Content-Type; absent: they carry no content. */
    payload?: string;
    content: Content;
  };
  heartbeatSeconds?: number;
  timeoutMs?: number;
  maxCount?: number;
  /** Whose access limits its notifications; absent: not limited (see access.ts). */
  owner?: Owner;
}

/** JSON's `_element` siblings, which carry a primitive's extensions (absent from @medplum/fhirtypes). */
type WithPrimitiveExtensions<T, K extends string> = T & { [P in K as `_${P}`]?: { extension?: Extension[] } };

const MAX_HEADERS = 16;
const MAX_HEADER_LENGTH = 4096;
const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)$/;
/** Set by Vigil itself; a subscriber may not override them. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection']);
const PAYLOADS = new Set(['application/fhir+json', 'application/json']);
const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/.source;
/** A MIME type and its parameters (RFC 9110 `media-type`, `application/fhir+json; fhirVersion=4.0`), on one line. */
const MEDIA_TYPE = new RegExp(String.raw`^(${TOKEN}/${TOKEN})(?:[ \t]*;[ \t]*${TOKEN}=(?:${TOKEN}|"[^"\\\r\n]*"))*$`);

export function parseSubscription(sub: Subscription, allowPrivate: boolean): ParsedSubscription {
  const criteria = sub.criteria;
  if (!criteria) throw badRequest('Subscription.criteria is required', 'Subscription.criteria');
  const topic = isTopicBased(sub) ? getTopic(criteria) : undefined;
  if (isTopicBased(sub) && !topic) throw badRequest(`Unknown SubscriptionTopic "${criteria}"`, 'Subscription.criteria');
  const channel = parseChannel(sub, allowPrivate, Boolean(topic));
  const triggers = topic ? topicTriggers(sub, topic) : [criteriaTrigger(sub, criteria)];
  const end = sub.end ? Date.parse(sub.end) : undefined;
  const ext = (url: string) => sub.channel.extension?.find((e) => e.url === url);
  const timeout = ext(`${BACKPORT}backport-timeout`)?.valueUnsignedInt;
  return {
    id: sub.id ?? '',
    status: sub.status,
    end,
    topic,
    triggers,
    channel,
    heartbeatSeconds: ext(`${BACKPORT}backport-heartbeat-period`)?.valueUnsignedInt || undefined,
    timeoutMs: timeout ? timeout * 1000 : undefined,
    maxCount: ext(`${BACKPORT}backport-max-count`)?.valuePositiveInt,
    owner: ownerOf(sub),
  };
}

/** Topic-based per the Backport IG: it claims the profile, or its criteria is a canonical rather than a search. */
function isTopicBased(sub: Subscription): boolean {
  return Boolean(sub.meta?.profile?.includes(BACKPORT_PROFILE) || /^https?:\/\//.test(sub.criteria ?? ''));
}

function criteriaTrigger(sub: Subscription, criteria: string): Trigger {
  const at = 'Subscription.criteria';
  const [type, query = ''] = splitCriteria(criteria);
  if (!isKnownResourceType(type)) throw badRequest(`Unknown resource type "${type}" in criteria`, at);
  const search = new URLSearchParams(query);
  checkSearch(type, search, at);
  const interactions = (sub.extension ?? []).filter((e) => e.url === INTERACTION_EXT).map((e) => e.valueCode);
  for (const i of interactions) {
    if (i !== 'create' && i !== 'update' && i !== 'delete') throw badRequest(`Interaction filter must be create, update or delete, not "${i}"`, 'Subscription.extension');
  }
  const fhirpath = (sub.extension ?? []).filter((e) => e.url === FHIRPATH_EXT).map((e) => e.valueString ?? '');
  for (const expression of fhirpath) checkFhirPath(expression, 'Subscription.extension');
  return {
    resourceType: type,
    search,
    interactions: new Set(interactions.length ? (interactions as Interaction[]) : ['create', 'update']),
    fhirpath,
  };
}

function topicTriggers(sub: Subscription, topic: Topic): Trigger[] {
  const at = 'Subscription.criteria.extension';
  const filters = new Map<string, URLSearchParams>();
  for (const ext of (sub as WithPrimitiveExtensions<Subscription, 'criteria'>)._criteria?.extension ?? []) {
    if (ext.url !== `${BACKPORT}backport-filter-criteria`) continue;
    const [type, query = ''] = splitCriteria(ext.valueString ?? '');
    const allowed = topic.filters.get(type);
    if (!allowed) throw badRequest(`Topic ${topic.url} cannot filter ${type} resources`, at);
    const search = new URLSearchParams(query);
    for (const key of search.keys()) {
      const code = key.split(/[:.]/)[0];
      if (!allowed.has(code)) throw badRequest(`Topic ${topic.url} does not support the filter "${code}" on ${type}`, at);
    }
    checkSearch(type, search, at);
    const merged = filters.get(type) ?? new URLSearchParams();
    for (const [k, v] of search) merged.append(k, v);
    filters.set(type, merged);
  }
  return topic.triggers.map((t) => {
    const search = new URLSearchParams(t.query ?? '');
    for (const [k, v] of filters.get(t.resourceType) ?? []) search.append(k, v);
    return { resourceType: t.resourceType, search, interactions: new Set(t.interactions), fhirpath: t.fhirpath ? [t.fhirpath] : [] };
  });
}

function parseChannel(sub: Subscription, allowPrivate: boolean, topicBased: boolean): ParsedSubscription['channel'] {
  const channel = sub.channel as WithPrimitiveExtensions<SubscriptionChannel, 'type' | 'payload'>;
  const type = channel?.type;
  // `message` would need FHIR messaging (a message Bundle with a MessageHeader), which Vigil does not offer
  if (type !== 'rest-hook' && type !== 'websocket') {
    throw badRequest(`Channel type "${type ?? ''}" is not supported; use rest-hook or websocket`, 'Subscription.channel.type');
  }
  if (channel._type?.extension?.some((e) => e.url === `${BACKPORT}backport-channel-type`)) {
    throw badRequest('Custom channel types (backport-channel-type) are not supported', 'Subscription.channel.type');
  }
  let endpoint: string | undefined;
  if (type !== 'websocket') endpoint = checkEndpoint(channel.endpoint, allowPrivate).href;
  // sent as given, parameters included: the notifications' Content-Type is channel.payload
  const payload = channel.payload?.trim() || undefined;
  const mimeType = payload && MEDIA_TYPE.exec(payload)?.[1].toLowerCase();
  if (payload && !mimeType) throw badRequest(`Payload "${channel.payload}" is not a MIME type (type/subtype; name=value)`, 'Subscription.channel.payload');
  if (mimeType && !PAYLOADS.has(mimeType)) throw badRequest(`Payload "${channel.payload}" is not supported; use application/fhir+json`, 'Subscription.channel.payload');
  const contentExt: Extension | undefined = channel._payload?.extension?.find((e) => e.url === `${BACKPORT}backport-payload-content`);
  const content = (contentExt?.valueCode ?? (topicBased ? undefined : payload ? 'full-resource' : 'empty')) as Content | undefined;
  if (topicBased && !payload) throw badRequest('A topic-based subscription needs channel.payload', 'Subscription.channel.payload');
  if (!content || !['empty', 'id-only', 'full-resource'].includes(content)) {
    throw badRequest(`backport-payload-content must be empty, id-only or full-resource, not "${content ?? ''}"`, 'Subscription.channel.payload');
  }
  return { type, endpoint, headers: parseHeaders(channel.header ?? []), payload, content };
}

function parseHeaders(headers: string[]): [string, string][] {
  const at = 'Subscription.channel.header';
  if (headers.length > MAX_HEADERS) throw badRequest(`At most ${MAX_HEADERS} channel headers are allowed`, at);
  return headers.map((h) => {
    if (h.length > MAX_HEADER_LENGTH) throw badRequest(`A channel header is longer than ${MAX_HEADER_LENGTH} characters`, at);
    const m = HEADER.exec(h);
    if (!m) throw badRequest(`Channel header "${h.slice(0, 80)}" must be "Name: value" on one line`, at);
    if (RESERVED_HEADERS.has(m[1].toLowerCase())) throw badRequest(`Channel header ${m[1]} is set by the server`, at);
    return [m[1], m[2]];
  });
}

function splitCriteria(criteria: string): [string, string?] {
  const q = criteria.indexOf('?');
  return q < 0 ? [criteria] : [criteria.slice(0, q), criteria.slice(q + 1)];
}

/** The criteria must be a valid search of the REST API; result parameters make no sense here. */
function checkSearch(type: string, search: URLSearchParams, at: string): void {
  let query;
  try {
    query = parseSearch(type, search);
  } catch (err) {
    if (err instanceof FhirError) throw badRequest(`Invalid criteria: ${err.message}`, at);
    throw err;
  }
  if (query.sort.length || query.include.length || query.revinclude.length || query.cursor || query.summary || query.elements) {
    throw badRequest('Criteria may only hold filters (no _sort, _include, _summary, _elements…)', at);
  }
}

function checkFhirPath(expression: string, at: string): void {
  try {
    parseFhirPath(expression);
  } catch (err) {
    throw badRequest(`Invalid FHIRPath criteria "${expression}": ${(err as Error).message}`, at);
  }
}
