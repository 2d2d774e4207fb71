// npm run simulate -- --patients 50 --rate 10 [--transport http|mqtt] [--url …] [--mqtt …] [--duration 60] [--deteriorate 0.1] [--seed 1] [--client-id …]
import { parseArgs } from 'node:util';
import { runSimulator } from '../server/src/simulator/index.ts';

const USAGE = `Streams simulated wearable readings into Vigil.

  --patients N       simulated patients, each with a Patient and a bound Device (default 50)
  --rate R           readings per second, all patients together (default 10)
  --transport T      http (POST /ingest/vigil-generic) or mqtt (QoS 1 to vigil/ingest/vigil-generic) (default http)
  --url URL          Vigil's base URL (default http://localhost:8103)
  --mqtt URL         the MQTT broker (default mqtt://127.0.0.1:1883)
  --duration S       stop after S seconds (default: run until Ctrl-C)
  --deteriorate P    share of time each patient spends in a deterioration episode, 0–1 (default 0)
  --seed N           same seed, same patients and readings (default 1)
  --client-id ID     OAuth client (system/Patient.crs, system/Device.crs, system/Observation.c) to
                     authenticate with; default $VIGIL_CLIENT_ID. Its secret: $VIGIL_CLIENT_SECRET`;

const { values } = parseArgs({
  options: {
    patients: { type: 'string', default: '50' },
    rate: { type: 'string', default: '10' },
    transport: { type: 'string', default: 'http' },
    url: { type: 'string', default: 'http://localhost:8103' },
    mqtt: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
    duration: { type: 'string' },
    deteriorate: { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
    'client-id': { type: 'string', default: process.env.VIGIL_CLIENT_ID },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function number(name: string, text: string | undefined): number {
  const n = Number(text);
  if (text === undefined || text === '' || !Number.isFinite(n)) fail(`--${name} must be a number, not "${text}"`);
  return n;
}

const transport = values.transport;
if (transport !== 'http' && transport !== 'mqtt') fail(`--transport must be http or mqtt, not "${transport}"`);
const clientId = values['client-id'];
const clientSecret = process.env.VIGIL_CLIENT_SECRET;
if (clientId && !clientSecret) fail('--client-id needs the client secret in VIGIL_CLIENT_SECRET');
const started = Date.now();
const simulator = await runSimulator({
  url: values.url,
  credentials: clientId && clientSecret ? { clientId, clientSecret } : undefined,
  mqttUrl: values.mqtt,
  transport,
  patients: number('patients', values.patients),
  rate: number('rate', values.rate),
  durationSeconds: values.duration === undefined ? undefined : number('duration', values.duration),
  deteriorate: number('deteriorate', values.deteriorate),
  seed: number('seed', values.seed),
  log: (line) => console.log(line),
}).catch((err: unknown) => fail((err as Error).message));

const report = () => {
  const s = simulator.stats;
  const rejected = transport === 'http' ? `, ${s.rejected} dead-lettered` : '';
  console.log(`${Math.round((Date.now() - started) / 1000)}s: ${s.sent} sent${rejected}, ${s.failed} failed, ${s.missing} readings missing (as a wearable would)`);
};
const progress = setInterval(report, 5000);
process.once('SIGINT', () => void simulator.stop());
process.once('SIGTERM', () => void simulator.stop());
await simulator.done;
clearInterval(progress);
report();
