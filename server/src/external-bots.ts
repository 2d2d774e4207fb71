import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuditEvent } from '@medplum/fhirtypes';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { clientCredentialsAuthorization } from '../../bots/runtime/client-credentials.ts';
import type { BotHost, TopicMatcher } from '../../bots/runtime/host.ts';
import type { Bot, Change, FhirClient } from '../../bots/runtime/manifest.ts';
import { restClient } from '../../bots/runtime/rest-client.ts';
import { notifiedChange, notifiedChanges, subscribeBots } from '../../bots/runtime/subscriber.ts';
import type { ExternalBotsConfig } from './config.ts';
import { FhirError, badRequest, notFound } from './fhir/outcome.ts';
import type { Logger } from './ops/logger.ts';

/** The external server's settings with the notification URL resolved. */
export type ExternalBots = ExternalBotsConfig & { notifyUrl: string };

/** The bots' client on the external server. */
export function externalClient({ fhirUrl, credentials }: ExternalBotsConfig): FhirClient {
  return restClient({ baseUrl: fhirUrl, authorization: credentials && clientCredentialsAuthorization(credentials) });
}

/**
 * A run's AuditEvent as Vigil keeps it: the resources it names (trigger, patient, what the run
 * wrote, the bot's Device) are the external server's, so its references are made absolute.
 */
export function onServer(event: AuditEvent, fhirUrl: string): AuditEvent {
  const base = fhirUrl.replace(/\/+$/, '');
  const absolute = <T extends { reference?: string } | undefined>(ref: T): T => (ref?.reference && RELATIVE.test(ref.reference) ? { ...ref, reference: `${base}/${ref.reference}` } : ref);
  return {
    ...event,
    agent: event.agent.map((a) => ({ ...a, who: absolute(a.who) })),
    source: { ...event.source, observer: absolute(event.source.observer) },
    entity: event.entity?.map((e) => ({ ...e, what: absolute(e.what) })),
  };
}

const RELATIVE = /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * How often the bots' Subscriptions are checked: one the server set to `error` (this replica was
 * unreachable long enough) or that someone changed is requested again.
 */
const RESUBSCRIBE_MS = 60_000;

/** Subscribes each triggered bot on the server, now and every minute after, until stopped; failures are logged and retried. */
export function keepSubscribed(fhir: FhirClient, bots: readonly Bot[], config: ExternalBots, logger: Logger): () => void {
  const subscriber = { endpoint: config.notifyUrl, header: `Authorization: Bearer ${config.notifySecret}` };
  // logged when it comes true: at the first success, and after each outage
  let subscribed = false;
  const subscribe = (): void => {
    subscribeBots(fhir, bots, subscriber).then(
      (subscriptions) => {
        if (!subscribed) logger.info({ fhirUrl: config.fhirUrl, subscriptions: subscriptions.map((s) => s.id) }, 'bots subscribed on the external FHIR server');
        subscribed = true;
      },
      (err: unknown) => {
        subscribed = false;
        logger.warn({ err, fhirUrl: config.fhirUrl }, 'could not subscribe the bots on the external FHIR server; retrying');
      },
    );
  };
  subscribe();
  const timer = setInterval(subscribe, RESUBSCRIBE_MS);
  return () => clearInterval(timer);
}

/** A topic bot's notifications are the server's own matches of its topic: nothing is left to decide. */
const NOTIFIED: TopicMatcher = { concerns: () => true, matching: async (_topic, changed) => new Set(changed.map(({ change }) => change.id)) };

/**
 * `/bots/notify/{bot}` (and `/{bot}/{type}/{id}`, as HAPI addresses a payload): an R4 rest-hook
 * notification carrying the changed resource, or for a bot triggered by a topic a Backport IG
 * notification Bundle (a handshake or heartbeat runs nothing). It is answered once the bot's runs are
 * queued (or the changes found not to concern the bot), so a failure here makes the server deliver it again.
 */
export function notifyRouter(host: BotHost, bots: readonly Bot[], config: ExternalBots, maxBodyBytes: number): Router {
  const router = Router();
  const triggers = new Map(bots.filter((b) => b.trigger).map((b) => [b.name, b.trigger]));
  const expected = digest(`Bearer ${config.notifySecret}`);
  const authenticate = (req: Request, _res: Response, next: NextFunction): void => {
    const given = req.get('authorization');
    next(given && timingSafeEqual(digest(given), expected) ? undefined : new FhirError(401, [{ severity: 'error', code: 'login', diagnostics: 'A bot notification must carry the secret its Subscription gave' }]));
  };
  const json = express.json({ limit: maxBodyBytes, strict: false, type: () => true });
  const receive = (req: Request, res: Response, next: NextFunction): void => {
    res.locals.route = '/bots/notify/:bot';
    const bot = req.params.bot as string;
    const trigger = triggers.get(bot);
    if (!trigger) return next(notFound(`No bot named "${bot}" takes notifications`));
    const changes = announced(trigger.topic, req.body);
    if (!changes) {
      const carried = trigger.topic ? 'a Backport IG notification Bundle whose focus entries carry the changed resources, with their' : 'the changed resource, with its';
      return next(badRequest(`A bot notification carries ${carried} id and meta.versionId`, 'Subscription.channel.payload'));
    }
    host.handleChanges(changes, { bot, topics: NOTIFIED }).then(() => res.status(200).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: 'accepted' }] }), next);
  };
  router.post('/:bot', authenticate, json, receive);
  router.put('/:bot/:type/:id', authenticate, json, receive);
  router.post('/:bot/:type/:id', authenticate, json, receive);
  return router;
}

/** The changes a notification announces: a Backport IG Bundle's to a bot triggered by a topic, else the one of an R4 payload. */
function announced(topic: string | undefined, body: unknown): Change[] | undefined {
  if (topic) return notifiedChanges(body);
  const change = notifiedChange(body);
  return change && [change];
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();
