import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';

/**
 * ioredis writes every command to its socket as it is issued, one system call each, and a BullMQ
 * job takes several commands (add, fetch, finish, the group bookkeeping): on the delivery worker
 * these writes were an eighth of its thread. Corking the socket from a loop turn's first write
 * until the turn's callbacks have run (`setImmediate`) sends everything issued meanwhile in one
 * `writev`, byte for byte in the same order, at most one loop turn later.
 */
export function coalesceWrites(redis: Redis): Redis {
  // each (re)connection has a socket of its own; ioredis sets `stream` before it connects
  redis.on('connect', () => corkPerTurn(redis.stream as Socket));
  return redis;
}

function corkPerTurn(socket: Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    return write.apply(this, args);
  } as Socket['write'];
}
