/**
 * Stateless randomness: every draw is a hash of a seed and keys (patient, signal, time, …), so
 * the generator is a pure function of its inputs and a seed replays the same traces.
 */

/** A uniform number in [0, 1). Keys may be any safe integers (times in ms included). */
export function uniform(seed: number, ...keys: number[]): number {
  let h = fmix(seed ^ 0x9e3779b9);
  for (const key of keys) {
    h = fmix((h ^ key) + 0x7f4a7c15); // key modulo 2^32
    h = fmix((h ^ Math.floor(key / 2 ** 32)) + 0x165667b1);
  }
  return (h >>> 0) / 2 ** 32;
}

/** A standard normal number cut at ±2.5 σ, so noise alone never looks like an emergency. */
export function gaussian(seed: number, ...keys: number[]): number {
  const u1 = 1 - uniform(seed, ...keys, 1);
  const u2 = uniform(seed, ...keys, 2);
  const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  return Math.max(-2.5, Math.min(2.5, z));
}

/** MurmurHash3's 32-bit finaliser. */
function fmix(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
