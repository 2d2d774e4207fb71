import type { Resource } from '@medplum/fhirtypes';
import { getMandatoryElements, getSummaryElements } from '../definitions.ts';
import { badRequest } from './outcome.ts';

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

/** Applies `_summary` and `_elements` to a resource's JSON text; returns it unchanged when neither applies. */
export function subset(content: string, summary: string | undefined, elements: string[] | undefined): string {
  if ((!summary || summary === 'false') && !elements) return content;
  const resource = JSON.parse(content) as Resource & Record<string, unknown>;
  const type = resource.resourceType;
  let keep: (key: string) => boolean;
  if (elements) {
    const wanted = new Set(elements.map((e) => (e.startsWith(`${type}.`) ? e.slice(type.length + 1) : e)));
    const mandatory = getMandatoryElements(type);
    keep = (k) => wanted.has(k) || mandatory.has(k);
  } else if (summary === 'true') {
    const s = getSummaryElements(type);
    keep = (k) => s.has(k);
  } else if (summary === 'text') {
    const mandatory = getMandatoryElements(type);
    keep = (k) => k === 'text' || k === 'id' || k === 'meta' || mandatory.has(k);
  } else if (summary === 'data') {
    keep = (k) => k !== 'text';
  } else {
    throw badRequest(`Unsupported _summary=${summary}`, '_summary');
  }
  const out: Record<string, unknown> = { resourceType: type };
  for (const [key, value] of Object.entries(resource)) {
    const name = key.replace(/^_/, '');
    if (key !== 'resourceType' && (keep(name) || keep(choiceBase(name)))) out[key] = value;
  }
  const meta = (out.meta ?? {}) as { tag?: unknown[] };
  out.meta = { ...meta, tag: [...(meta.tag ?? []), SUBSETTED] };
  return JSON.stringify(out);
}

/** valueQuantity → value, so `_elements=value` keeps a choice type. */
function choiceBase(name: string): string {
  const m = /^([a-z][A-Za-z]*?)[A-Z][A-Za-z]*$/.exec(name);
  return m ? m[1] : name;
}
