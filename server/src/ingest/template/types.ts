import type { Device, Encounter, Observation, Patient, Reference } from '@medplum/fhirtypes';

/** The engine's public data shapes. */

/** A device reading after normalization, independent of the device's own message format. */
export interface Measurement {
  /** The `typeName` that binds it to a FHIR template. */
  readonly type: string;
  readonly deviceId: string;
  readonly patientId?: string;
  readonly encounterId?: string;
  readonly correlationId?: string;
  readonly occurrenceTime: Date;
  /** End of the reading's interval (e.g. steps counted over 10:00–10:15); from `endTimestampExpression`. */
  readonly endTime?: Date;
  readonly properties: readonly MeasurementProperty[];
}

export interface MeasurementProperty {
  readonly name: string;
  readonly value: string;
}

/** Why (part of) a message produced no measurement. Message-level problems have no template. */
export interface Rejection {
  /** e.g. "deviceMapping.template[2]". */
  readonly template?: string;
  readonly typeName?: string;
  /** The template field whose value was unusable, e.g. "timestampExpression" or "values[0].valueExpression". */
  readonly field?: string;
  readonly reason: string;
}

export interface NormalizeResult {
  readonly measurements: Measurement[];
  readonly rejections: Rejection[];
}

export interface NormalizeOptions {
  /** The clock readings are checked against (future timestamps); defaults to the current time. */
  readonly now?: Date;
}

/** What the caller resolved for a set of measurements: one device, and the patient it is attached to. */
export interface ObservationContext {
  readonly issued: Date | string;
  readonly device: Reference<Device>;
  readonly subject?: Reference<Patient>;
  readonly encounter?: Reference<Encounter>;
}

export interface ObservationsResult {
  readonly observations: Observation[];
  /** For each Observation, the time its newest reading was taken (its end, for a reading over an interval), in epoch ms. */
  readonly newest: number[];
  /** Measurements that could not be placed, e.g. a SampledData grid that would grow past its limit. */
  readonly rejections: Rejection[];
}

export interface MergeResult {
  readonly observation: Observation;
  /** False when the incoming Observation added nothing: the caller can skip the write. */
  readonly changed: boolean;
  /** Set when the incoming data could not be merged (the existing Observation is returned as it was). */
  readonly conflict?: string;
}

export type IdentityResolution = 'Create' | 'Lookup';

export interface CompiledMapping {
  /** Part of every Observation identifier, so renaming a mapping starts new Observations. */
  readonly name: string;
  readonly identityResolution: IdentityResolution;
  /** Every type the mapping produces. */
  readonly types: readonly string[];
  /** Runs every device template over one message. Never throws for message content. */
  normalize(message: unknown, options?: NormalizeOptions): NormalizeResult;
  /** Groups measurements (of one device, see groupByIdentity) into Observations. */
  toObservations(measurements: readonly Measurement[], context: ObservationContext): ObservationsResult;
}
