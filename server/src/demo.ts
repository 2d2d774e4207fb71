import { randomBytes } from 'node:crypto';
import type { CareTeam, Device } from '@medplum/fhirtypes';
import { putClient } from './auth/clients.ts';
import type { Logger } from './ops/logger.ts';
import { matchIds } from './store/conditional.ts';
import type { Repository } from './store/repository.ts';
import { SIMULATOR_SYSTEM, createPatient, runSimulator, type Simulator } from './simulator/index.ts';

const PATIENTS = 8;
const READINGS_PER_SECOND = 4;
const SEED = 1;
const DETERIORATE = 0.15;

/**
 * Demo mode (embedded, unless VIGIL_DEMO=off): simulated wearables stream readings for a few
 * patients, all on the demo clinician's care teams; the demo patient's own watch is the first
 * simulated device, so the patient portal has live data too.
 */
export async function startDemo(options: { baseUrl: string; repo: Repository; logger: Logger }): Promise<{ stop: () => Promise<void> }> {
  const { baseUrl, repo, logger } = options;
  const credentials = { clientId: 'vigil-demo-simulator', clientSecret: randomBytes(24).toString('hex') };
  await putClient(repo.db, { client_id: credentials.clientId, secret: credentials.clientSecret, scopes: 'system/Patient.crs system/Device.crs system/Observation.c' });

  const first = createPatient(0, { seed: SEED, deteriorate: DETERIORATE });
  const watch: Device = {
    resourceType: 'Device', id: 'demo-patient-watch', status: 'active', manufacturer: 'Huawei', deviceName: [{ name: 'Watch D', type: 'user-friendly-name' }],
    identifier: [{ system: SIMULATOR_SYSTEM, value: first.deviceId }], patient: { reference: 'Patient/demo-patient' },
  };
  await repo.update(watch);

  let simulator: Simulator | undefined;
  let stopped = false;
  const started = runSimulator({
    url: baseUrl, credentials, patients: PATIENTS, rate: READINGS_PER_SECOND, deteriorate: DETERIORATE, seed: SEED,
    log: (line) => logger.info({ simulator: line }, 'demo simulator'),
  }).then(async (sim) => {
    simulator = sim;
    if (stopped) await sim.stop();
    else await careTeams(repo);
  }).catch((err: unknown) => logger.warn({ err }, 'demo simulator could not start'));
  logger.info({ patients: PATIENTS, readingsPerSecond: READINGS_PER_SECOND }, 'demo: simulated patients are streaming readings');
  return {
    async stop() {
      stopped = true;
      await simulator?.stop();
      await started;
    },
  };
}

/** Every simulated patient gets a care team with the demo clinician, so the clinician sees them. */
async function careTeams(repo: Repository): Promise<void> {
  const patients = await matchIds(repo.db, 'Patient', `identifier=${SIMULATOR_SYSTEM}|`, repo.baseUrl, 100);
  for (const id of [...patients, 'demo-patient']) {
    const team: CareTeam = {
      resourceType: 'CareTeam', id: `demo-team-${id}`, status: 'active', name: 'Remote monitoring',
      subject: { reference: `Patient/${id}` },
      participant: [{ member: { reference: 'Practitioner/demo-clinician' } }],
    };
    await repo.update(team);
  }
}
