import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Builds the app (Vite) unless app/dist is newer than every source file: `npm start` and the
 * browser tests run it first, so a fresh clone serves the app without a separate build step.
 */
const APP = fileURLToPath(new URL('../app/', import.meta.url));
const BUILT = join(APP, 'dist', 'index.html');

function newest(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))));
}

export function buildAppIfStale(): void {
  const sources = ['src', 'index.html', 'vite.config.ts', 'postcss.config.js', 'package.json'].map((p) => join(APP, p));
  if (existsSync(BUILT) && statSync(BUILT).mtimeMs > Math.max(...sources.map(newest))) return;
  const result = spawnSync('npm', ['run', 'build', '--workspace', 'app'], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error('building the app failed');
}

if (import.meta.url === `file://${process.argv[1]}`) buildAppIfStale();
