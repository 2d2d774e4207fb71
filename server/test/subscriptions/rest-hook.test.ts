import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { publicLookup } from '../../src/subscriptions/endpoint.ts';
import { postNotification } from '../../src/subscriptions/rest-hook.ts';

const within5s = () => ({ signal: new AbortController().signal, timeoutMs: 5_000 });

describe('rest-hook POST', () => {
  let server: Server;
  let port = 0;
  const received: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push({ url: req.url ?? '', headers: req.headers, body });
        if (req.url === '/moved') res.writeHead(302, { location: '/hook' }).end();
        else res.writeHead(200).end('ok');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  it('sends the body and the channel headers, and answers the status without following a redirect', async () => {
    received.length = 0;
    const headers: [string, string][] = [['Authorization', 'Bearer abc'], ['X-Tag', 'a'], ['x-tag', 'b'], ['content-type', 'application/fhir+json']];
    const status = await postNotification(new URL(`http://127.0.0.1:${port}/hook`), headers, '{"resourceType":"Bundle"}', within5s());
    assert.equal(status, 200);
    assert.equal(received[0].body, '{"resourceType":"Bundle"}');
    assert.equal(received[0].headers.authorization, 'Bearer abc');
    assert.equal(received[0].headers['x-tag'], 'a, b');
    assert.equal(received[0].headers['content-type'], 'application/fhir+json');
    assert.equal(await postNotification(new URL(`http://127.0.0.1:${port}/moved`), [], '', within5s()), 302);
    assert.deepEqual(received.map((r) => r.url), ['/hook', '/moved']);
  });

  it('refuses, as it connects, a name that resolves to a private address', async () => {
    received.length = 0;
    const url = new URL(`http://localhost:${port}/hook`);
    await assert.rejects(postNotification(url, [], '{}', { ...within5s(), lookup: publicLookup }), /localhost resolves to the private address/);
    assert.equal(received.length, 0);
    // the same endpoint where private endpoints are allowed (no lookup check)
    assert.equal(await postNotification(url, [], '{}', within5s()), 200);
  });

  it('gives up at its deadline, and when the signal aborts', async () => {
    const slow = createServer(() => undefined).listen(0, '127.0.0.1');
    await once(slow, 'listening');
    try {
      const url = new URL(`http://127.0.0.1:${(slow.address() as AddressInfo).port}/`);
      await assert.rejects(postNotification(url, [], '{}', { signal: new AbortController().signal, timeoutMs: 200 }), /did not answer within 200 ms/);
      const shutdown = new AbortController();
      setTimeout(() => shutdown.abort(new Error('shutting down')), 200);
      await assert.rejects(postNotification(url, [], '{}', { signal: shutdown.signal, timeoutMs: 60_000 }), /shutting down/);
    } finally {
      slow.closeAllConnections();
      slow.close();
    }
  });
});
