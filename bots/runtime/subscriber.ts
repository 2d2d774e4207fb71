import type { Resource, Subscription } from '@medplum/fhirtypes';
import type { Bot, Change, FhirClient } from './manifest.ts';
import { BOT_CODE_SYSTEM } from './settings.ts';

export interface Subscriber {
  /** Where the server sends a bot's notifications: `{endpoint}/{bot}`. */
  endpoint: string;
  /** The header each notification must carry (`Authorization: Bearer …`), given to the server in the Subscription. */
  header: string;
}

/**
 * What a bot subscribes to on a FHIR server that is not Vigil: an R4 rest-hook Subscription with
 * its trigger's criteria and the full resource as payload (an empty notification would not say
 * which resource changed), tagged with the bot's name so that it is found and kept up to date.
 */
export function botSubscription(bot: Bot, { endpoint, header }: Subscriber): Subscription | undefined {
  if (!bot.trigger) return undefined;
  return {
    resourceType: 'Subscription',
    meta: { tag: [{ system: BOT_CODE_SYSTEM, code: bot.name }] },
    status: 'requested',
    reason: `${bot.title ?? bot.name}: Vigil runs the bot on each match`,
    // every resource of the type: a search with no parameters, the form servers such as HAPI take
    criteria: bot.trigger.criteria ?? `${bot.trigger.resourceType}?`,
    channel: { type: 'rest-hook', endpoint: `${endpoint}/${bot.name}`, payload: 'application/fhir+json', header: [header] },
  };
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
