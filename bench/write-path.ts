import { readFileSync } from 'node:fs';
import type { Observation, Resource } from '@medplum/fhirtypes';
import { loadRequiredBindings } from '../server/src/bindings.ts';
import { loadDefinitions } from '../server/src/definitions.ts';
import { compileMapping } from '../server/src/ingest/template/index.ts';
import { loadProfiles } from '../server/src/profiles.ts';
import { extractIndex, extractIndexByFhirPath } from '../server/src/store/extract.ts';
import { rowParams } from '../server/src/store/repository.ts';
import { passesBaseStructure } from '../server/src/store/base-structure.ts';
import { structureErrors, validate } from '../server/src/store/validation.ts';
import { readSynthea, syntheaFiles } from '../server/test/synthea.ts';
import { fmt } from './support.ts';

/**
 * `npm run bench -- write-path [--patients N]`: CPU per resource of the write path without a
 * database (validation, search-column extraction, JSON, row building), for a device vital-sign
 * Observation and a mix of Synthea resources. No server, no PostgreSQL: run it to profile, e.g.
 * `npm exec -- node --cpu-prof bench/run.ts write-path`.
 */
const BASE = 'http://localhost:8103';

export async function main(args: string[]): Promise<void> {
  const i = args.indexOf('--patients');
  const patients = i >= 0 ? Number(args[i + 1]) : 10;
  loadDefinitions();
  loadRequiredBindings();
  loadProfiles();

  const mapping = compileMapping(JSON.parse(readFileSync(new URL('../fhir-profiles/ingest/vigil-generic.json', import.meta.url), 'utf8')), { name: 'vigil-generic' });
  const { measurements } = mapping.normalize({ deviceId: 'dev-1', timestamp: '2026-01-01T00:00:00Z', type: 'heart-rate', value: 72, unit: '/min' });
  const device = mapping.toObservations(measurements, {
    issued: new Date().toISOString(), device: { reference: 'Device/dev-1' }, subject: { reference: 'Patient/p-1' },
  }).observations[0] as Observation;

  const synthea: Resource[] = [];
  for (const file of syntheaFiles().filter((f) => !f.startsWith('0-')).slice(0, patients)) {
    for (const e of readSynthea(file).entry ?? []) if (e.resource) synthea.push(stamped(e.resource));
  }

  console.log(`bench write-path: µs per resource (1 device Observation; ${fmt(synthea.length)} resources of ${patients} Synthea patients)`);
  for (const [name, resources] of [['device Observation', [stamped(device)]], ['Synthea mix', synthea]] as const) {
    const n = Math.max(resources.length, 20_000);
    const per = (fn: (r: Resource) => unknown): number => measure(resources, n, fn);
    const validation = per(validate);
    const structure = per(passesBaseStructure);
    const full = per(structureErrors);
    const contents = new Map(resources.map((r) => [r, JSON.stringify(r)]));
    const index = per((r) => extractIndex(r, BASE, contents.get(r)));
    const interpreted = per((r) => extractIndexByFhirPath(r, BASE));
    const json = per((r) => JSON.stringify(r));
    const row = per((r) => rowParams(r, '', BASE, {}));
    console.log(`${name.padEnd(20)} (R4 structure: quick check ${fmt(structure, 1)}, full validator ${fmt(full, 1)}; index by FHIRPath alone ${fmt(interpreted, 1)})`);
    console.log(`${name.padEnd(20)} validate ${fmt(validation, 1)}  extractIndex ${fmt(index, 1)}  JSON.stringify ${fmt(json, 1)}  rowParams ${fmt(row, 1)}  total ${fmt(validation + index + json + row, 1)}`);
  }
}

function stamped(resource: Resource): Resource {
  return { ...resource, id: resource.id ?? crypto.randomUUID(), meta: { ...resource.meta, versionId: '1', lastUpdated: new Date().toISOString() } } as Resource;
}

/**
 * Mean CPU µs per call over `n` calls cycling through `resources`, after a warm-up pass. CPU time
 * (not wall time) so that other processes on a shared machine disturb the figures less.
 */
function measure(resources: readonly Resource[], n: number, fn: (r: Resource) => unknown): number {
  for (let i = 0; i < Math.min(n, 2000); i++) fn(resources[i % resources.length]);
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(resources[i % resources.length]);
  const used = process.cpuUsage(t0);
  return (used.user + used.system) / n;
}
