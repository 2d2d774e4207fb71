import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';

/** What a websocket bound to a subscription is sent: the R4 ping, or the notification itself. */
export interface WsNotification {
  subscriptionId: string;
  /** Sent to sockets bound with the plain R4 `bind {id}`: `ping {id}`. */
  ping: string;
  /** Sent to sockets bound with a token (payload-carrying mode): the notification body, when there is one. */
  payload?: string;
}

/**
 * What replicas tell each other. Websocket notifications fan out to every replica: one raised by
 * the worker that delivered it reaches sockets connected to any API replica. And an API replica,
 * which drains no outbox, wakes the workers' drainers when it commits, so its changes are matched
 * at once rather than at the next poll. Redis pub/sub when REDIS_URL is set, in-process otherwise
 * (role `all`, whose own commits wake its drainer).
 */
export interface Hub {
  publish(message: WsNotification): Promise<void>;
  subscribe(listener: (message: WsNotification) => void): void;
  /** Tells the drainers that changes were committed; calls in one turn of the event loop send one message. */
  committed(): void;
  onCommitted(listener: () => void): void;
  close(): Promise<void>;
}

export function createHub(redisUrl: string | undefined, prefix: string, onError: (error: Error) => void): Hub {
  const local = new EventEmitter();
  if (!redisUrl) {
    return {
      async publish(message) {
        local.emit('message', message);
      },
      subscribe: (listener) => void local.on('message', listener),
      committed: () => void local.emit('committed'),
      onCommitted: (listener) => void local.on('committed', listener),
      async close() {
        local.removeAllListeners();
      },
    };
  }
  const channel = `${prefix}:subscription-ws`;
  const commits = `${prefix}:outbox-commits`;
  const publisher = new Redis(redisUrl);
  const subscriber = new Redis(redisUrl);
  publisher.on('error', onError);
  subscriber.on('error', onError);
  let subscribed: Promise<unknown> | undefined;
  let listening: Promise<unknown> | undefined;
  let announcing = false;
  subscriber.on('message', (from: string, text: string) => {
    if (from === commits) local.emit('committed');
    else local.emit('message', JSON.parse(text) as WsNotification);
  });
  return {
    async publish(message) {
      await publisher.publish(channel, JSON.stringify(message));
    },
    subscribe(listener) {
      subscribed ??= subscriber.subscribe(channel).catch(onError);
      local.on('message', listener);
    },
    committed() {
      if (announcing) return;
      announcing = true;
      setImmediate(() => {
        announcing = false;
        publisher.publish(commits, '').catch(onError);
      });
    },
    onCommitted(listener) {
      listening ??= subscriber.subscribe(commits).catch(onError);
      local.on('committed', listener);
    },
    async close() {
      local.removeAllListeners();
      await Promise.allSettled([publisher.quit(), subscriber.quit()]);
    },
  };
}
