import type { MedplumClient } from '@medplum/core';
import type { Parameters, Resource, Subscription } from '@medplum/fhirtypes';
import { useEffect, useRef, useState } from 'react';

export type LiveState = 'connecting' | 'live' | 'offline';

/** A change pushed by the server: the resource (full-resource payload) or just its reference. */
export interface LiveChange { resourceType: string; id: string; resource?: Resource }

const RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];
/** Pushed changes are handed over in batches: a busy ward re-renders a few times a second, not per reading. */
const FLUSH_MS = 250;
/** Subscriptions left behind by a closed tab expire on their own. */
const SUBSCRIPTION_LIFETIME_MS = 12 * 3_600_000;

/**
 * Live changes for the given R4 criteria over Vigil's websocket channel: one Subscription per
 * criterion (channel websocket, full-resource payload), bound to one socket with a binding token.
 * The server filters deliveries by the user's access, so nothing here trusts what it receives
 * beyond showing it. Changes arrive in batches, in order. Reconnects with backoff; the
 * subscriptions are deleted on unmount.
 */
export function useLive(medplum: MedplumClient, criteria: string[], onChanges: (changes: LiveChange[]) => void): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const handler = useRef(onChanges);
  handler.current = onChanges;
  const key = criteria.join('\n');

  useEffect(() => {
    let closed = false;
    let socket: WebSocket | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let attempt = 0;
    let pending: LiveChange[] = [];
    const flush = setInterval(() => {
      if (!pending.length) return;
      const batch = pending;
      pending = [];
      handler.current(batch);
    }, FLUSH_MS);
    const subscriptions = Promise.all(key.split('\n').map((criterion) => medplum.createResource<Subscription>({
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'Vigil app live view',
      criteria: criterion,
      end: new Date(Date.now() + SUBSCRIPTION_LIFETIME_MS).toISOString(),
      channel: { type: 'websocket', payload: 'application/fhir+json' },
    })));

    const connect = async (): Promise<void> => {
      try {
        const subs = await subscriptions;
        const ids = subs.map((s) => s.id as string);
        const binding = await medplum.get<Parameters>(medplum.fhirUrl('Subscription', '$get-ws-binding-token').toString() + `?id=${ids.join(',')}`, { cache: 'no-cache' });
        const token = binding.parameter?.find((p) => p.name === 'token')?.valueString;
        const url = binding.parameter?.find((p) => p.name === 'websocket-url')?.valueUrl ?? `${location.origin}/fhir/R4/ws`;
        if (!token || closed) return;
        socket = new WebSocket(url.replace(/^http/, 'ws'));
        socket.onopen = () => socket?.send(`bind-with-token ${token}`);
        socket.onmessage = (message) => {
          const text = String(message.data);
          if (text.startsWith('bound')) {
            attempt = 0;
            setState('live');
          } else if (text.startsWith('{')) {
            pending.push(...changesIn(JSON.parse(text) as Resource));
          }
        };
        socket.onclose = () => retry();
      } catch {
        retry();
      }
    };
    const retry = (): void => {
      if (closed) return;
      setState('offline');
      timer = setTimeout(() => void connect(), RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)]);
    };
    void connect();

    return () => {
      closed = true;
      clearTimeout(timer);
      clearInterval(flush);
      socket?.close();
      subscriptions.then((subs) => Promise.all(subs.map((s) => medplum.deleteResource('Subscription', s.id as string))), () => undefined).catch(() => undefined);
    };
  }, [medplum, key]);

  return state;
}

/**
 * An R4 subscription's payload is the resource itself; a topic-based one's a notification Bundle
 * whose first entry is its SubscriptionStatus, then the focus entries.
 */
function changesIn(message: Resource): LiveChange[] {
  if (message.resourceType !== 'Bundle') return message.id ? [{ resourceType: message.resourceType, id: message.id, resource: message }] : [];
  return (message.entry ?? []).slice(1).flatMap((entry) => {
    const [resourceType, id] = (entry.fullUrl ?? '').split('/').slice(-2);
    return resourceType && id ? [{ resourceType, id, ...(entry.resource ? { resource: entry.resource } : {}) }] : [];
  });
}
