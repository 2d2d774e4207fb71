import type { Resource } from '@medplum/fhirtypes';
import type { Written } from './audit.ts';
import type { FhirClient } from './manifest.ts';

/**
 * The client a run's handler gets: it notes what the run writes (for the AuditEvent) and refuses
 * every call once the run is aborted, so a timed-out handler cannot go on writing.
 */
export function recordingClient(fhir: FhirClient, signal: AbortSignal): { client: FhirClient; written: Written[] } {
  const written: Written[] = [];
  const note = <T extends Resource>(resource: T, interaction: Written['interaction']): T => {
    written.push({ resource, interaction });
    return resource;
  };
  const client: FhirClient = {
    read: (type, id) => (signal.throwIfAborted(), fhir.read(type, id)),
    vread: (type, id, versionId) => (signal.throwIfAborted(), fhir.vread(type, id, versionId)),
    search: (type, params) => (signal.throwIfAborted(), fhir.search(type, params)),
    async *searchPages(type, params) {
      for await (const page of fhir.searchPages(type, params)) {
        signal.throwIfAborted();
        yield page;
      }
    },
    lastn: (params) => (signal.throwIfAborted(), fhir.lastn(params)),
    create: async (resource) => (signal.throwIfAborted(), note(await fhir.create(resource), 'create')),
    update: async (resource, options) => (signal.throwIfAborted(), note(await fhir.update(resource, options), 'update')),
    createIfNoneExist: async (resource, criteria) => {
      signal.throwIfAborted();
      const result = await fhir.createIfNoneExist(resource, criteria);
      if (result.created) note(result.resource, 'create');
      return result;
    },
  };
  return { client, written };
}
