import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { BACKPORT, type Content, type ParsedSubscription } from './parse.ts';

/** Notification Bundles of the Subscriptions R5 Backport IG, R4 flavour. */

export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';

export interface NotificationEvent {
  number: number;
  timestamp: string;
  focus?: { resourceType: string; id: string; versionId: number; interaction: string };
  /** The focus version's JSON, for full-resource content. */
  resource?: Resource;
}

export interface StatusInput {
  sub: ParsedSubscription;
  fhirBase: string;
  type: NotificationType;
  /** Events only: handshakes and heartbeats do not count. None for a classic R4 subscription, which numbers no events. */
  eventsSinceStart?: number;
  events?: NotificationEvent[];
  content?: Content;
  error?: string;
}

export function statusParameters({ sub, fhirBase, type, eventsSinceStart, events = [], content = sub.channel.content, error }: StatusInput): Parameters {
  const parameter: ParametersParameter[] = [
    { name: 'subscription', valueReference: { reference: `${fhirBase}/Subscription/${sub.id}` } },
  ];
  // the IG: topic SHOULD NOT be present in empty payloads
  if (content !== 'empty' && sub.topic) parameter.push({ name: 'topic', valueCanonical: sub.topic.url });
  parameter.push({ name: 'status', valueCode: sub.status }, { name: 'type', valueCode: type });
  if (eventsSinceStart !== undefined) parameter.push({ name: 'events-since-subscription-start', valueString: String(eventsSinceStart) });
  for (const event of events) {
    const part: ParametersParameter[] = [
      { name: 'event-number', valueString: String(event.number) },
      { name: 'timestamp', valueInstant: event.timestamp },
    ];
    if (content !== 'empty' && event.focus) part.push({ name: 'focus', valueReference: { reference: focusUrl(fhirBase, event.focus) } });
    parameter.push({ name: 'notification-event', part });
  }
  if (error) parameter.push({ name: 'error', valueCodeableConcept: { text: error } });
  return { resourceType: 'Parameters', id: randomUUID(), meta: { profile: [`${BACKPORT}backport-subscription-status-r4`] }, parameter };
}

/** A `history` Bundle whose first entry is the status; every entry carries request and response. */
export function notificationBundle(input: StatusInput): Bundle {
  const status = statusParameters(input);
  const content = input.content ?? input.sub.channel.content;
  const entry: BundleEntry[] = [
    {
      fullUrl: `urn:uuid:${status.id}`,
      resource: status,
      request: { method: 'GET', url: `${input.fhirBase}/Subscription/${input.sub.id}/$status` },
      response: { status: '200' },
    },
  ];
  if (content !== 'empty') {
    for (const event of input.events ?? []) {
      if (!event.focus) continue;
      const { resourceType, id, interaction } = event.focus;
      const created = interaction === 'create';
      entry.push({
        fullUrl: focusUrl(input.fhirBase, event.focus),
        ...(content === 'full-resource' && event.resource ? { resource: event.resource } : {}),
        request: { method: created ? 'POST' : interaction === 'delete' ? 'DELETE' : 'PUT', url: created ? resourceType : `${resourceType}/${id}` },
        response: { status: created ? '201' : '200' },
      });
    }
  }
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { profile: [`${BACKPORT}backport-subscription-notification-r4`] },
    type: 'history',
    timestamp: new Date().toISOString(),
    entry,
  };
}

const focusUrl = (fhirBase: string, f: { resourceType: string; id: string }): string => `${fhirBase}/${f.resourceType}/${f.id}`;
