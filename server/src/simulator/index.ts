/** Simulated wearables: a pure reading generator, and a runner that streams readings into Vigil. */
export {
  createPatient,
  deteriorationAt,
  EPISODE,
  readingsAt,
  VITAL_KINDS,
  vitalsAt,
  type Baseline,
  type Episode,
  type GenericReading,
  type SimulatedPatient,
  type VitalKind,
  type Vitals,
} from './generator.ts';
export { enrol, SIMULATOR_SYSTEM } from './enrol.ts';
export { runSimulator, type Simulator, type SimulatorOptions, type SimulatorStats } from './run.ts';
export type { ClientCredentials } from './token.ts';
