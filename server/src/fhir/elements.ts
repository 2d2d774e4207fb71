import { tryGetDataType } from '@medplum/core';
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
    if (key !== 'resourceType' && keep(elementName(type, key.replace(/^_/, '')))) out[key] = value;
  }
  const meta = (out.meta ?? {}) as { tag?: unknown[] };
  out.meta = { ...meta, tag: [...(meta.tag ?? []), SUBSETTED] };
  return JSON.stringify(out);
}

const elementsByType = new Map<string, { names: Set<string>; choices: string[] }>();

/** The element a JSON property belongs to: `multipleBirthInteger` is `multipleBirth[x]`, kept as `multipleBirth`. */
function elementName(type: string, name: string): string {
  let known = elementsByType.get(type);
  if (!known) {
    const names = Object.keys(tryGetDataType(type)?.elements ?? {});
    known = { names: new Set(names), choices: names.filter((e) => e.endsWith('[x]')).map((e) => e.slice(0, -3)) };
    elementsByType.set(type, known);
  }
  if (known.names.has(name)) return name;
  return known.choices.find((c) => name.startsWith(c) && /^[A-Z]/.test(name.slice(c.length))) ?? name;
}
