import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { DRIVERS, currentAuth, request, useServer } from '../support.ts';
import { SYNTHEA_DIR, readSynthea, readSyntheaText, syntheaFiles } from '../synthea.ts';

/** Batch and transaction Bundles are parsed as their body streams in (server/src/fhir/bundle-reader.ts). */

const LIMIT = 64 * 1024;

const patientEntry = (i: number): BundleEntry => ({
  fullUrl: `urn:uuid:5e000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  resource: { resourceType: 'Patient', identifier: [{ system: 'urn:test:stream', value: `p${i}` }], name: [{ family: `Stream${i}`, given: ['Zoë 😀'] }] },
  request: { method: 'POST', url: 'Patient' },
});
/** Pretty-printed, as most clients send them, so that errors have lines and columns. */
const bundleText = (type: 'batch' | 'transaction', entries: number): string =>
  JSON.stringify({ resourceType: 'Bundle', type, entry: Array.from({ length: entries }, (_, i) => patientEntry(i)) }, null, 2);

async function post(url: string, body: BodyInit, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', ...(await currentAuth()), ...headers },
    body,
    ...(body instanceof ReadableStream ? { duplex: 'half' as const } : {}),
  });
  return { status: res.status, body: await res.json() };
}

for (const driver of DRIVERS) {
  describe(`streamed batch and transaction bodies (${driver})`, () => {
    const s = useServer(driver, { VIGIL_MAX_BODY_BYTES: String(LIMIT) });
    const streamed = async (): Promise<number> => (await request('GET', `${s.fhir}/Patient?identifier=urn:test:stream|&_summary=count`)).body.total;
    const expectMalformed = (res: { status: number; body: any }, position: number, what: string): void => {
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.resourceType, 'OperationOutcome');
      assert.equal(res.body.issue[0].code, 'structure');
      assert.match(res.body.issue[0].diagnostics, new RegExp(`^Malformed JSON: .* at position ${position} \\(line \\d+, column \\d+\\)$`), what);
    };

    it('refuses truncated bodies at the position where they end, and writes nothing, for transactions and batches', async () => {
      for (const type of ['transaction', 'batch'] as const) {
        const text = bundleText(type, 30);
        const cuts = [0, text.indexOf('"entry"') + 12, Math.floor(text.length / 2), text.lastIndexOf('}') - 3, text.length - 1];
        for (const cut of cuts) expectMalformed(await post(s.fhir, text.slice(0, cut)), cut, `${type} cut at ${cut}`);
      }
      assert.equal(await streamed(), 0);
    });

    it('refuses malformed JSON anywhere with its position, line and column', async () => {
      const text = bundleText('batch', 30);
      const at = text.indexOf('"Stream17"');
      const line = text.slice(0, at).split('\n').length;
      const column = at - text.lastIndexOf('\n', at - 1);
      const res = await post(s.fhir, `${text.slice(0, at)}Stream17${text.slice(at + 10)}`);
      expectMalformed(res, at, 'bare word');
      assert.match(res.body.issue[0].diagnostics, new RegExp(`\\(line ${line}, column ${column}\\)`));
      const trailingComma = text.replace(/\}\n {2}\]\n\}$/, '},\n  ]\n}');
      expectMalformed(await post(s.fhir, trailingComma), trailingComma.lastIndexOf(']'), 'trailing comma');
      expectMalformed(await post(s.fhir, `${text} {}`), text.length + 1, 'text after the Bundle');
      assert.equal(await streamed(), 0, 'the batch entries before the error were not run');
    });

    it('names an entry that is not one, and refuses an entry member that is not an array', async () => {
      const entry = JSON.stringify(patientEntry(900));
      const cases: [string, RegExp][] = [
        [`{"resourceType":"Bundle","type":"transaction","entry":[${entry},7]}`, /Bundle\.entry\[1\] must be an object/],
        [`{"resourceType":"Bundle","type":"batch","entry":[${entry},null]}`, /Bundle\.entry\[1\] must be an object/],
        [`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"toString","url":"Patient"}}]}`, /Bundle\.entry\[0\]\.request\.method/],
        [`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":42}}]}`, /Bundle\.entry\[0\]\.request\.url/],
        [`{"resourceType":"Bundle","type":"transaction","entry":{"request":{}}}`, /Bundle\.entry must be an array/],
        [`{"resourceType":"Bundle","type":"transaction","entry":[],"entry":[]}`, /duplicate \\"entry\\" member/],
        ['[]', /takes a Bundle/],
      ];
      for (const [body, pattern] of cases) {
        const res = await post(s.fhir, body);
        assert.equal(res.status, 400, body);
        assert.match(JSON.stringify(res.body), pattern);
      }
      assert.equal(await streamed(), 0);
    });

    it('answers 413 past VIGIL_MAX_BODY_BYTES, counting inflated bytes, and writes nothing', async () => {
      const big = bundleText('transaction', 300);
      assert.ok(big.length > LIMIT);
      assert.equal((await post(s.fhir, big)).status, 413, 'Content-Length over the limit');
      const bomb = gzipSync(`${bundleText('transaction', 2).slice(0, -1)}${' '.repeat(4 * LIMIT)}}`);
      assert.ok(bomb.length < LIMIT / 4);
      const res = await post(s.fhir, bomb, { 'content-encoding': 'gzip' });
      assert.equal(res.status, 413, JSON.stringify(res.body));
      assert.equal(res.body.issue[0].code, 'too-costly');
      const chunked = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < big.length; i += 8192) c.enqueue(Buffer.from(big.slice(i, i + 8192)));
          c.close();
        },
      });
      assert.equal((await post(s.fhir, chunked)).status, 413, 'chunked, no Content-Length');
      assert.equal(await streamed(), 0);
    });

    it('inflates gzip, deflate and br; refuses other encodings, charsets and media types with 415', async () => {
      const text = (i: number): string => JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [patientEntry(1000 + i)] });
      for (const [i, [encoding, body]] of ([['gzip', gzipSync(text(1))], ['deflate', deflateSync(text(2))], ['br', brotliCompressSync(text(3))]] as const).entries()) {
        const res = await post(s.fhir, body, { 'content-encoding': encoding });
        assert.equal(res.status, 200, `${encoding}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.entry[0].response.status, '201 Created', `entry ${i}`);
      }
      const refused: [Record<string, string>, RegExp][] = [
        [{ 'content-encoding': 'compress' }, /Content-Encoding compress/],
        [{ 'content-type': 'application/fhir+json; charset=iso-8859-1' }, /charset iso-8859-1/],
        [{ 'content-type': 'text/plain' }, /takes a Bundle in application\/fhir\+json/],
      ];
      for (const [headers, pattern] of refused) {
        const res = await post(s.fhir, text(9), headers);
        assert.equal(res.status, 415, JSON.stringify(headers));
        assert.match(res.body.issue[0].diagnostics, pattern);
      }
      const garbled = await post(s.fhir, Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' });
      assert.equal(garbled.status, 400);
      assert.equal(await streamed(), 3);
    });

    it('reads a body of unknown length in small pieces, characters split between them', async () => {
      const bytes = Buffer.from(bundleText('transaction', 5), 'utf8');
      const body = new ReadableStream<Uint8Array>({
        async start(c) {
          for (let i = 0; i < bytes.length; i += 5) {
            c.enqueue(bytes.subarray(i, i + 5));
            await new Promise((resolve) => setImmediate(resolve));
          }
          c.close();
        },
      });
      const res = await post(s.fhir, body);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.entry.length, 5);
      const stored = (await request('GET', `${s.fhir}/${res.body.entry[4].response.location.split('/_history')[0]}`)).body;
      assert.deepEqual(stored.name, [{ family: 'Stream4', given: ['Zoë 😀'] }]);
    });
  });

  // PGlite, the single-process embedded engine, writes several times slower: half the size there
  const size = driver === 'pglite' ? 10_000 : 20_000;
  describe(`a transaction of ${size.toLocaleString('en')} Synthea entries (${driver})`, () => {
    // an API replica: no bots reacting to the readings (they would add Devices and alerts of their own)
    const s = useServer(driver, { VIGIL_MAX_BODY_BYTES: String(256 * 1024 * 1024), VIGIL_ROLE: 'api' });

    it('loads in one streamed transaction and every resource is stored', { timeout: 900_000 }, async () => {
      // the largest patient Bundles, merged until there are `size` entries; built before any request,
      // since this long synchronous work would outlast the server's keep-alive timeout mid-test
      const bytes = (f: string): number => statSync(`${SYNTHEA_DIR}/${f}`).size;
      const entry: BundleEntry[] = [];
      for (const file of syntheaFiles().filter((f) => !f.startsWith('0-')).sort((a, b) => bytes(b) - bytes(a))) {
        if (entry.length >= size) break;
        entry.push(...(readSynthea(file).entry ?? []));
      }
      const expected = new Map<string, number>();
      for (const e of entry) expected.set(e.resource?.resourceType as string, (expected.get(e.resource?.resourceType as string) ?? 0) + 1);
      const body = gzipSync(JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry } satisfies Bundle));
      const organisations = syntheaFiles().filter((f) => f.startsWith('0-')).map(readSyntheaText);

      for (const text of organisations) assert.equal((await post(s.fhir, text)).status, 200);
      const before = new Map<string, number>();
      for (const type of expected.keys()) before.set(type, (await request('GET', `${s.fhir}/${type}?_summary=count`)).body.total);
      const res = await post(s.fhir, body, { 'content-encoding': 'gzip' });
      assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 1000));
      assert.equal(res.body.type, 'transaction-response');
      assert.equal(res.body.entry.length, entry.length);
      assert.deepEqual(res.body.entry.filter((e: any) => e.response.status !== '201 Created'), []);
      for (const [type, n] of expected) {
        assert.equal((await request('GET', `${s.fhir}/${type}?_summary=count`)).body.total, (before.get(type) ?? 0) + n, type);
      }
      const patient = res.body.entry[0].response.location.split('/_history')[0];
      const own = entry.findIndex((e, i) => i > 0 && e.resource?.resourceType === 'Patient');
      const observations = entry.slice(0, own).filter((e) => e.resource?.resourceType === 'Observation').length;
      assert.equal((await request('GET', `${s.fhir}/Observation?subject=${patient}&_summary=count`)).body.total, observations, 'references rewritten to the new ids');
    });
  });
}
