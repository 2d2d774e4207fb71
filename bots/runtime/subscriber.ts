import type { Bundle, Element, Parameters, Resource, Subscription, SubscriptionChannel } from '@medplum/fhirtypes';
import type { Bot, Change, FhirClient } from './manifest.ts';
import { BOT_CODE_SYSTEM } from './settings.ts';

export interface Subscriber {
  /** Where the server sends a bot's notifications: `{endpoint}/{bot}`. */
  endpoint: string;
  /** The header each notification must carry (`Authorization: Bearer …`), given to the server in the Subscription. */
  header: string;
}

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';

/** A Subscription as JSON carries it: `channel._payload` holds the Backport IG's payload content (absent from @medplum/fhirtypes). */
type BackportSubscription = Subscription & { channel: SubscriptionChannel & { _payload?: Element } };

/**
 * What a bot subscribes to on a FHIR server that is not Vigil, tagged with the bot's name so that it
 * is found and kept up to date: an R4 rest-hook Subscription with its trigger's criteria, or for a
 * topic a Backport IG one (R4 flavour) with the topic's canonical as criteria. Either way the
 * notifications carry the full resource (an empty one would not say which resource changed).
 */
export function botSubscription(bot: Bot, { endpoint, header }: Subscriber): Subscription | undefined {
  if (!bot.trigger) return undefined;
  const { topic } = bot.trigger;
  const channel = { type: 'rest-hook' as const, endpoint: `${endpoint}/${bot.name}`, payload: 'application/fhir+json', header: [header] };
  const subscription: BackportSubscription = {
    resourceType: 'Subscription',
    meta: { ...(topic ? { profile: [`${BACKPORT}backport-subscription`] } : {}), tag: [{ system: BOT_CODE_SYSTEM, code: bot.name }] },
    status: 'requested',
    reason: `${bot.title ?? bot.name}: Vigil runs the bot on each match`,
    // without criteria, every resource of the type: a search with no parameters, the form servers such as HAPI take
    criteria: topic ?? bot.trigger.criteria ?? `${bot.trigger.resourceType}?`,
    channel: topic ? { ...channel, _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'full-resource' }] } } : channel,
  };
  return subscription;
}

/**
 * Makes each triggered bot's Subscription on the server as `botSubscription` says: created, or the
 * one tagged for the bot updated when it differs (a changed endpoint, criteria or secret, or one the
 * server switched off or to `error`). Returns the Subscriptions in force.
 */
export async function subscribeBots(fhir: FhirClient, bots: readonly Bot[], subscriber: Subscriber): Promise<Subscription[]> {
  const subscribed: Subscription[] = [];
  for (const bot of bots) {
    const wanted = botSubscription(bot, subscriber);
    if (!wanted) continue;
    const [found, ...extra] = await fhir.search<Subscription>('Subscription', { _tag: `${BOT_CODE_SYSTEM}|${bot.name}`, _count: '10' });
    for (const stale of extra) await fhir.update<Subscription>({ ...stale, status: 'off' });
    if (found && found.status !== 'off' && found.status !== 'error' && same(found, wanted)) subscribed.push(found);
    else subscribed.push(found ? await fhir.update<Subscription>({ ...wanted, id: found.id }) : await fhir.create(wanted));
  }
  return subscribed;
}

function same(stored: Subscription, wanted: Subscription): boolean {
  return stored.criteria === wanted.criteria && JSON.stringify(stored.channel) === JSON.stringify(wanted.channel);
}

/**
 * The changes a Backport IG notification (R4 flavour) announces: a `history` Bundle whose first entry
 * is the SubscriptionStatus `Parameters`. A handshake or heartbeat announces none; an event
 * notification's focus entries carry the changed resources (full-resource), their interaction in
 * `request` (a deletion leaves nothing to run on). Other entries are context, not changes. Undefined
 * for a body that is no such Bundle, or an event without its focus resource's id and version.
 */
export function notifiedChanges(body: unknown): Change[] | undefined {
  const bundle = body as Bundle | undefined;
  const status = bundle?.entry?.[0]?.resource as Parameters | undefined;
  if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'history' || status?.resourceType !== 'Parameters') return undefined;
  if (status.parameter?.find((p) => p.name === 'type')?.valueCode !== 'event-notification') return [];
  const events = status.parameter.filter((p) => p.name === 'notification-event');
  const focus = events.map((e) => localReference(e.part?.find((p) => p.name === 'focus')?.valueReference?.reference));
  if (focus.includes(undefined)) return undefined;
  const changes: Change[] = [];
  for (const entry of (bundle.entry ?? []).slice(1)) {
    const method = entry.request?.method;
    if (!focus.includes(localReference(entry.fullUrl)) || method === 'DELETE') continue;
    const change = notifiedChange(entry.resource);
    if (!change) return undefined;
    changes.push(method === 'POST' || method === 'PUT' ? { ...change, interaction: method === 'POST' ? 'create' : 'update' } : change);
  }
  return changes;
}

/** `Type/id` of a reference or full URL, relative or absolute, versioned or not. */
function localReference(url: string | undefined): string | undefined {
  return url ? /([A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(url)?.[1] : undefined;
}

/**
 * The change an R4 rest-hook notification announces: the resource it carries, at its version (a
 * notification tells no interaction: version 1 is a create). Undefined for a body that is no
 * resource with an id and version.
 */
export function notifiedChange(body: unknown): Change | undefined {
  const resource = body as Resource | undefined;
  const versionId = resource?.meta?.versionId;
  if (typeof resource?.resourceType !== 'string' || typeof resource.id !== 'string' || typeof versionId !== 'string') return undefined;
  return { interaction: versionId === '1' ? 'create' : 'update', resourceType: resource.resourceType, id: resource.id, versionId };
}
