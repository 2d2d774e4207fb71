import type { Resource } from '@medplum/fhirtypes';

/** Damaged variants of real resources, for tests that compare two implementations on bad input. */

/** A seeded pseudo-random sequence in [0, 1): the same seed damages the same way on every run. */
export function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

/** One member of the resource (at any depth) picked at random: the object holding it and its key. */
export function randomSlot(resource: Resource, random: () => number): { obj: Record<string, unknown>; key: string } {
  const slots: { obj: Record<string, unknown>; key: string }[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        slots.push({ obj: node as Record<string, unknown>, key });
        walk(value);
      }
    }
  };
  walk(resource);
  return slots[Math.floor(random() * slots.length)];
}
