import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Bundle } from '@medplum/fhirtypes';

/** The 120 synthetic patients in ../shared/data/synthea: the two `0-*` batch bundles first, then one transaction per patient. */
export const SYNTHEA_DIR = process.env.VIGIL_SYNTHEA_DIR ?? fileURLToPath(new URL('../../../shared/data/synthea/', import.meta.url));

export function syntheaFiles(): string[] {
  return readdirSync(SYNTHEA_DIR).filter((f) => f.endsWith('.json.bz2')).sort();
}

export function readSyntheaText(file: string): string {
  return execFileSync('bzcat', [`${SYNTHEA_DIR}/${file}`], { maxBuffer: 1 << 30 }).toString('utf8');
}

export function readSynthea(file: string): Bundle {
  return JSON.parse(readSyntheaText(file)) as Bundle;
}
