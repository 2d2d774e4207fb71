import type { Extension } from '@medplum/fhirtypes';

/**
 * Which reading a single value (Quantity, String, CodeableConcept) comes from: the one the device
 * took last, whatever order the readings arrive in, so a re-sent older reading changes nothing.
 * A grouped Observation's effectivePeriod is its bucket (or span), not that reading's time, so the
 * time is kept in an extension on the value's holder: the Observation for `value[x]`, each
 * component for its own. An instant Observation's readings all share its effective time, which
 * is therefore its readings' time, and it carries no extension.
 */
export const READING_TIME_URL = 'https://vigil.health/fhir/StructureDefinition/ingest-reading-time';

export interface TimedValue {
  /** The device timestamp, in milliseconds since the epoch. */
  readonly time: number;
  readonly value: unknown;
}

/**
 * Whether `a` replaces `b`: taken later or, at the same time, first in a fixed order (JSON text),
 * so that the value kept never depends on which of the two arrived last.
 */
export function supersedes(a: TimedValue, b: TimedValue): boolean {
  return a.time !== b.time ? a.time > b.time : JSON.stringify(a.value) > JSON.stringify(b.value);
}

export function readingTimeExtension(time: number): Extension {
  return { url: READING_TIME_URL, valueDateTime: new Date(time).toISOString() };
}

/** The reading time a holder records, undefined when it records none. */
export function recordedReadingTime(holder: { extension?: Extension[] }): number | undefined {
  const time = Date.parse(holder.extension?.find((e) => e.url === READING_TIME_URL)?.valueDateTime ?? '');
  return Number.isNaN(time) ? undefined : time;
}

/** The holder's extensions with its reading time set to `time` (removed when undefined); undefined when none are left. */
export function withReadingTime(extensions: Extension[] | undefined, time: number | undefined): Extension[] | undefined {
  const kept = [...(extensions ?? []).filter((e) => e.url !== READING_TIME_URL), ...(time === undefined ? [] : [readingTimeExtension(time)])];
  return kept.length > 0 ? kept : undefined;
}
