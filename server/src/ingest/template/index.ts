/**
 * The device-ingest template engine: MedTech-compatible device and FHIR mappings, compiled and
 * validated once, then applied to messages as pure functions (no I/O).
 */
export { compileMapping } from './compile.ts';
export { MappingError } from './errors.ts';
export { groupByIdentity, type IdentityGroup } from './identity.ts';
export { mergeObservation } from './merge.ts';
export { IDENTIFIER_SYSTEM } from './observations.ts';
export type {
  CompiledMapping,
  IdentityResolution,
  Measurement,
  MeasurementProperty,
  MergeResult,
  NormalizeOptions,
  NormalizeResult,
  ObservationContext,
  ObservationsResult,
  Rejection,
} from './types.ts';
