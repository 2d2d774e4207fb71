import { readdirSync, readFileSync } from 'node:fs';
import type { Basic, Extension } from '@medplum/fhirtypes';
import { getSearchParams, isKnownResourceType } from '../definitions.ts';
import { parseSearch } from '../store/search/query.ts';

/**
 * Server-defined SubscriptionTopics, shipped in fhir-profiles/Basic-topic-*.json as the Backport
 * IG represents them in R4: `Basic` coded `SubscriptionTopic` carrying R5 cross-version extensions.
 */

export type Interaction = 'create' | 'update' | 'delete';

export interface TopicTrigger {
  resourceType: string;
  interactions: Interaction[];
  /** queryCriteria.current: a search the new version must match. */
  query?: string;
  /** fhirPathCriteria over `%current` and `%previous`. */
  fhirpath?: string;
}

export interface Topic {
  url: string;
  basic: Basic;
  triggers: TopicTrigger[];
  /** canFilterBy: resource type → the filter parameters allowed on it. */
  filters: Map<string, Set<string>>;
}

const X5 = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.';
const X43 = 'http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic.';
const DIR = new URL('../../../fhir-profiles/', import.meta.url);

let topics: Map<string, Topic> | undefined;

/** Every topic by canonical URL; loaded and checked once, so a broken topic file stops start-up. */
export function getTopics(): ReadonlyMap<string, Topic> {
  topics ??= new Map(
    readdirSync(DIR)
      .filter((f) => /^Basic-topic-[a-z0-9-]+\.json$/.test(f))
      .map((f) => parseTopic(JSON.parse(readFileSync(new URL(f, DIR), 'utf8')) as Basic, f))
      .map((t) => [t.url, t]),
  );
  return topics;
}

/** A topic by canonical, `|version` ignored. */
export function getTopic(canonical: string): Topic | undefined {
  return getTopics().get(canonical.split('|')[0]);
}

function parseTopic(basic: Basic, file: string): Topic {
  const fail = (why: string): never => {
    throw new Error(`${file}: ${why}`);
  };
  const url = basic.extension?.find((e) => e.url === `${X5}url`)?.valueUri ?? fail('no topic url');
  const triggers: TopicTrigger[] = [];
  const filters = new Map<string, Set<string>>();
  for (const ext of basic.extension ?? []) {
    if (ext.url === `${X43}resourceTrigger`) {
      const resourceType = (part(ext, 'resource')?.valueUri ?? '').split('/').pop() ?? '';
      if (!isKnownResourceType(resourceType)) fail(`unknown trigger resource ${resourceType}`);
      const query = part(part(ext, 'queryCriteria'), 'current')?.valueString;
      if (query) parseSearch(resourceType, new URLSearchParams(query));
      triggers.push({
        resourceType,
        interactions: parts(ext, 'supportedInteraction').map((e) => e.valueCode as Interaction),
        query,
        fhirpath: part(ext, 'fhirPathCriteria')?.valueString,
      });
    } else if (ext.url === `${X43}canFilterBy`) {
      const resourceType = part(ext, 'resource')?.valueUri ?? '';
      const param = part(ext, 'filterParameter')?.valueString ?? '';
      if (!getSearchParams(resourceType).has(param)) fail(`canFilterBy ${resourceType}.${param} is not a search parameter`);
      filters.set(resourceType, (filters.get(resourceType) ?? new Set()).add(param));
    }
  }
  if (triggers.length === 0) fail('no resourceTrigger');
  return { url, basic, triggers, filters };
}

const parts = (ext: Extension | undefined, url: string): Extension[] => ext?.extension?.filter((e) => e.url === url) ?? [];
const part = (ext: Extension | undefined, url: string): Extension | undefined => parts(ext, url)[0];
