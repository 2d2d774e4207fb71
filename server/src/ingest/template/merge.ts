import type { Observation, ObservationComponent, SampledData } from '@medplum/fhirtypes';
import { deepEqual } from './json.ts';
import { IDENTIFIER_SYSTEM } from './observations.ts';
import { recordedReadingTime, supersedes, withReadingTime, type TimedValue } from './reading-time.ts';
import { decodeGrid, encodeGrid } from './sampled-data.ts';
import type { MergeResult } from './types.ts';
import { applyVitalSigns } from './vital-signs.ts';

/**
 * Merges a freshly built Observation into the stored one with the same identifier: periods are
 * united, SampledData slots are filled by their time (incoming readings win a slot), other values
 * keep the latest reading of the two (reading-time.ts), missing components are added. Stored
 * fields the engine does not own (id, meta.versionId, notes, …) are kept.
 */

const VALUE_KEYS = ['valueQuantity', 'valueSampledData', 'valueString', 'valueCodeableConcept'] as const;
type ValueKey = (typeof VALUE_KEYS)[number];
/** The Observation (for value[x]) or a component. */
type ValueHolder = Pick<Observation, ValueKey | 'extension'>;

interface Range {
  readonly start: number;
  readonly end: number;
}

export function mergeObservation(existing: Observation, incoming: Observation): MergeResult {
  const key = ingestIdentifier(incoming);
  if (key === undefined || key !== ingestIdentifier(existing)) {
    throw new Error('mergeObservation: both Observations must carry the same urn:vigil:ingest identifier');
  }
  const merged = structuredClone(existing);
  const existingRange = rangeOf(existing);
  const incomingRange = rangeOf(incoming);
  if (existing.effectivePeriod && incoming.effectivePeriod && existingRange && incomingRange) {
    merged.effectivePeriod = {
      start: new Date(Math.min(existingRange.start, incomingRange.start)).toISOString(),
      end: new Date(Math.max(existingRange.end, incomingRange.end)).toISOString(),
    };
  }
  const target = rangeOf(merged);
  const context = { existing: existingRange, incoming: incomingRange, target };

  if (!mergeValue(merged, existing, incoming, context)) return conflict(existing);
  for (const component of incoming.component ?? []) {
    const stored = merged.component?.find((c) => sameCode(c, component));
    if (!stored) {
      merged.component = [...(merged.component ?? []), structuredClone(component)];
    } else if (!mergeValue(stored, stored, component, context)) {
      return conflict(existing);
    }
  }
  // References resolved since the stored version was written; `??=` would add undefined members.
  if (!merged.subject && incoming.subject) merged.subject = incoming.subject;
  if (!merged.encounter && incoming.encounter) merged.encounter = incoming.encounter;
  if (!merged.device && incoming.device) merged.device = incoming.device;
  applyVitalSigns(merged);

  const changed = !deepEqual(merged, existing);
  if (changed && incoming.issued) merged.issued = incoming.issued;
  return { observation: changed ? merged : existing, changed };
}

function ingestIdentifier(obs: Observation): string | undefined {
  return obs.identifier?.find((i) => i.system === IDENTIFIER_SYSTEM)?.value;
}

function conflict(existing: Observation): MergeResult {
  return { observation: existing, changed: false, conflict: 'the merged SampledData grid would exceed its size limit' };
}

function rangeOf(obs: Observation): Range | undefined {
  const start = Date.parse(obs.effectivePeriod?.start ?? obs.effectiveDateTime ?? '');
  const end = Date.parse(obs.effectivePeriod?.end ?? obs.effectivePeriod?.start ?? obs.effectiveDateTime ?? '');
  return Number.isNaN(start) || Number.isNaN(end) ? undefined : { start, end };
}

function sameCode(a: ObservationComponent, b: ObservationComponent): boolean {
  const first = (c: ObservationComponent) => c.code.coding?.[0];
  const x = first(a);
  const y = first(b);
  return x && y ? x.system === y.system && x.code === y.code : a.code.text === b.code.text;
}

/** Writes the merged value into `target`; false when a SampledData grid would be too large. `target` starts as a copy of `existing`. */
function mergeValue(
  target: ValueHolder,
  existing: ValueHolder,
  incoming: ValueHolder,
  ranges: { existing?: Range; incoming?: Range; target?: Range },
): boolean {
  const incomingKey = VALUE_KEYS.find((k) => incoming[k] !== undefined);
  if (!incomingKey) return true;
  const stored = existing.valueSampledData;
  const fresh = incoming.valueSampledData;
  if (incomingKey === 'valueSampledData' && stored && fresh && ranges.existing && ranges.incoming && ranges.target) {
    const data = mergeGrids(stored, ranges.existing.start, fresh, ranges.incoming.start, ranges.target);
    if (data === undefined) return false;
    target.valueSampledData = { ...structuredClone(fresh), data };
    return true;
  }
  const storedKey = VALUE_KEYS.find((k) => existing[k] !== undefined);
  if (storedKey && !supersedes(timed(incoming, incomingKey, ranges.incoming), timed(existing, storedKey, ranges.existing))) return true;
  for (const k of VALUE_KEYS) delete target[k];
  Object.assign(target, { [incomingKey]: structuredClone(incoming[incomingKey]) });
  const extension = withReadingTime(target.extension, recordedReadingTime(incoming));
  if (extension) target.extension = extension;
  else delete target.extension;
  return true;
}

/** A holder's value with its reading's time: recorded (grouped Observations), else the effective time (instants; also grouped ones stored before it was recorded). */
function timed(holder: ValueHolder, key: ValueKey, range: Range | undefined): TimedValue {
  return { time: recordedReadingTime(holder) ?? range?.start ?? -Infinity, value: { [key]: holder[key] } };
}

function mergeGrids(stored: SampledData, storedStart: number, fresh: SampledData, freshStart: number, target: Range): string | undefined {
  // encodeGrid sorts stably and lets the last reading of a slot win, so incoming readings go last.
  const samples = [...decodeGrid(stored.data ?? '', storedStart, stored.period), ...decodeGrid(fresh.data ?? '', freshStart, fresh.period)];
  return encodeGrid(samples, target.start, target.end, fresh.period);
}
