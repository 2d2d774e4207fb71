import type { Quantity } from '@medplum/fhirtypes';

/**
 * Just enough UCUM to compare quantities written in different units of the same dimension: each
 * UCUM quantity is also indexed in a canonical unit, and searches in UCUM units are converted alike.
 */
export const UCUM = 'http://unitsofmeasure.org';

interface Canonical { code: string; factor: number; offset?: number }

const PREFIXES: readonly [string, number][] = Object.entries({ k: 1e3, h: 1e2, da: 1e1, d: 1e-1, c: 1e-2, m: 1e-3, u: 1e-6, n: 1e-9, p: 1e-12 });
const BASE: Record<string, Canonical> = {
  g: { code: 'g', factor: 1 },
  L: { code: 'L', factor: 1 },
  l: { code: 'L', factor: 1 },
  m: { code: 'm', factor: 1 },
  s: { code: 's', factor: 1 },
  mol: { code: 'mol', factor: 1 },
  Pa: { code: 'Pa', factor: 1 },
};
const SPECIAL: Record<string, Canonical> = {
  min: { code: 's', factor: 60 },
  h: { code: 's', factor: 3600 },
  d: { code: 's', factor: 86400 },
  '[lb_av]': { code: 'g', factor: 453.59237 },
  '[oz_av]': { code: 'g', factor: 28.349523125 },
  '[in_i]': { code: 'm', factor: 0.0254 },
  '[ft_i]': { code: 'm', factor: 0.3048 },
  'mm[Hg]': { code: 'Pa', factor: 133.322 },
  Cel: { code: 'K', factor: 1, offset: 273.15 },
  K: { code: 'K', factor: 1 },
  '[degF]': { code: 'K', factor: 5 / 9, offset: 255.3722222222222 },
};

function lookup(code: string): Canonical | undefined {
  if (SPECIAL[code]) return SPECIAL[code];
  if (BASE[code]) return BASE[code];
  for (const [prefix, factor] of PREFIXES) {
    const base = code.startsWith(prefix) ? BASE[code.slice(prefix.length)] : undefined;
    if (base) return { code: base.code, factor: base.factor * factor };
  }
  return undefined;
}

/** The quantity in its canonical UCUM unit, when it is a UCUM quantity of a known dimension. */
export function canonicalQuantity(q: Pick<Quantity, 'value' | 'system' | 'code'>): { value: number; system: string; code: string } | undefined {
  if (q.system !== UCUM || !q.code || typeof q.value !== 'number') return undefined;
  const c = lookup(q.code);
  if (!c) return undefined;
  return { value: roundSignificant(q.value * c.factor + (c.offset ?? 0)), system: UCUM, code: `canonical:${c.code}` };
}

/** Float noise from the conversion must not break equality with the same value converted again. */
function roundSignificant(value: number): number {
  return Number(value.toPrecision(12));
}
