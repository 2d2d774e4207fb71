import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { loadRequiredBindings } from '../server/src/bindings.ts';
import { loadDefinitions } from '../server/src/definitions.ts';
import { loadProfiles } from '../server/src/profiles.ts';
import { extractIndex } from '../server/src/store/extract.ts';
import { validationIssues } from '../server/src/store/validation.ts';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { readSyntheaText, syntheaFiles } from '../server/test/synthea.ts';
import { fmt, http, recreateDatabase, startServer } from './support.ts';

/**
 * `npm run bench -- synthea [--concurrency N]`: loads the 120 Synthea patients into PostgreSQL
 * through transaction Bundles and reports resources/s beside a raw COPY of the same resources.
 */
export async function main(args: string[]): Promise<void> {
  const i = args.indexOf('--concurrency');
  const concurrency = i >= 0 ? Number(args[i + 1]) : 2;
  const files = syntheaFiles();
  console.log(`bench synthea: decompressing ${files.length} bundles…`);
  const texts = files.map((f) => readSyntheaText(f));
  const url = await recreateDatabase('vigil_bench_synthea');
  const server = await startServer(url, 8191);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    let resources = 0;
    const post = async (text: string): Promise<void> => {
      const res = await http('POST', `${server.base}/fhir/R4`, text);
      if (res.status !== 200) throw new Error(`load failed: ${res.status} ${res.body.slice(0, 300)}`);
      resources += (JSON.parse(res.body) as Bundle).entry?.length ?? 0;
    };
    const t0 = performance.now();
    const [first, rest] = [texts.filter((_, k) => files[k].startsWith('0-')), texts.filter((_, k) => !files[k].startsWith('0-'))];
    for (const text of first) await post(text);
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < rest.length) await post(rest[next++]);
    }));
    const seconds = (performance.now() - t0) / 1000;

    // Ceiling: the same resources' JSON copied raw into a bare table.
    const rows = texts.flatMap((t) => ((JSON.parse(t) as Bundle).entry ?? []).map((e) => `${randomUUID()}\t${JSON.stringify(e.resource).replaceAll('\\', '\\\\')}\n`));
    await client.query('CREATE UNLOGGED TABLE raw_copy (id text, content text)');
    const c0 = performance.now();
    await pipeline(Readable.from(rows), client.query(copyFrom('COPY raw_copy (id, content) FROM STDIN')));
    const copyRate = rows.length / ((performance.now() - c0) / 1000);

    // The write path's own CPU cost per resource, in this process: validation and search indexing.
    loadDefinitions();
    loadRequiredBindings();
    loadProfiles();
    const all = texts.flatMap((t) => ((JSON.parse(t) as Bundle).entry ?? []).map((e) => ({ ...(e.resource as Resource), id: randomUUID() })));
    const perResource = (fn: (r: Resource) => unknown): number => {
      const v0 = performance.now();
      for (const r of all) fn(r);
      return ((performance.now() - v0) * 1000) / all.length;
    };
    const validation = perResource((r) => validationIssues(r));
    const indexing = perResource((r) => extractIndex(r, server.base));

    console.log(`raw PostgreSQL COPY (same ${fmt(rows.length)} resources): ${fmt(copyRate)} resources/s   <- ceiling`);
    console.log(`write-path CPU per resource: validation ${fmt(validation, 1)} µs, search indexing ${fmt(indexing, 1)} µs`);
    console.log(`Vigil transaction load (${concurrency} concurrent bundles): ${fmt(resources)} resources in ${fmt(seconds, 1)} s = ${fmt(resources / seconds)} resources/s`);
  } finally {
    await client.end();
    await server.stop();
  }
}
