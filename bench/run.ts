/** `npm run bench -- <name> [options]`: runs bench/<name>.ts. Benchmarks are run by hand, never in CI. */
const [name, ...args] = process.argv.slice(2);
const benches = ['rest', 'synthea', 'ingest', 'alerts', 'tokens', 'subscriptions', 'app', 'write-path'];
if (!name || !benches.includes(name)) {
  console.error(`usage: npm run bench -- <${benches.join('|')}> [options]`);
  process.exit(2);
}
const bench = (await import(`./${name}.ts`)) as { main(args: string[]): Promise<void> };
await bench.main(args);
