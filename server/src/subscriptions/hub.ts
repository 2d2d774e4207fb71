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
 * Fan-out of websocket notifications to every replica: a notification raised by the worker that
 * delivered it reaches sockets connected to any API replica. Redis pub/sub when REDIS_URL is set,
 * in-process otherwise (role `all`).
 */
export interface Hub {
  publish(message: WsNotification): Promise<void>;
  subscribe(listener: (message: WsNotification) => void): void;
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
      async close() {
        local.removeAllListeners();
      },
    };
  }
  const channel = `${prefix}:subscription-ws`;
  const publisher = new Redis(redisUrl);
  const subscriber = new Redis(redisUrl);
  publisher.on('error', onError);
  subscriber.on('error', onError);
  let subscribed: Promise<unknown> | undefined;
  subscriber.on('message', (_channel: string, text: string) => local.emit('message', JSON.parse(text) as WsNotification));
  return {
    async publish(message) {
      await publisher.publish(channel, JSON.stringify(message));
    },
    subscribe(listener) {
      subscribed ??= subscriber.subscribe(channel).catch(onError);
      local.on('message', listener);
    },
    async close() {
      local.removeAllListeners();
      await Promise.allSettled([publisher.quit(), subscriber.quit()]);
    },
  };
}
