import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonSplitter, JsonSyntaxError } from '../../src/fhir/json-splitter.ts';

/** A small deterministic PRNG, so that a failure can be reproduced from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRING_CHARS = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0001', 'é', '€', '😀', ']', '}', ',', ':', '[', '{'];

function randomValue(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 3 ? 4 : 7));
  switch (pick) {
    case 0: return Array.from({ length: Math.floor(next() * 6) }, () => STRING_CHARS[Math.floor(next() * STRING_CHARS.length)]).join('');
    case 1: return [0, -1, 3.25, -0.5e-7, 1e21, 12345678901234][Math.floor(next() * 6)];
    case 2: return [true, false, null][Math.floor(next() * 3)];
    case 3: return '';
    case 4: return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
    default: return Object.fromEntries(Array.from({ length: Math.floor(next() * 4) }, (_, i) => [`k${i}${STRING_CHARS[Math.floor(next() * STRING_CHARS.length)]}`, randomValue(next, depth + 1)]));
  }
}

/** JSON text with random whitespace between tokens (stringify, then spaces after structural characters outside strings). */
function randomText(value: unknown, next: () => number): string {
  const compact = JSON.stringify(value);
  let out = '';
  let inString = false;
  for (let i = 0; i < compact.length; i++) {
    const c = compact[i];
    out += c;
    if (inString) {
      if (c === '\\') out += compact[++i];
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if ('{}[],:'.includes(c) && next() < 0.3) {
      out += [' ', '\n', '\t', '\r\n  '][Math.floor(next() * 4)];
    }
  }
  return out;
}

/** Feeds `text` in random pieces; returns the frame and the items, or the syntax error. */
function split(text: string, next: () => number): { frame?: unknown; items: unknown[]; error?: JsonSyntaxError } {
  const items: unknown[] = [];
  const splitter = new JsonSplitter('entry', (item, index) => {
    assert.equal(index, items.length);
    items.push(item);
  });
  try {
    for (let i = 0; i < text.length;) {
      const size = 1 + Math.floor(next() * 40);
      splitter.write(text.slice(i, i + size));
      i += size;
    }
    return { frame: JSON.parse(splitter.end()), items };
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    return { items, error: err };
  }
}

describe('incremental JSON splitter', () => {
  it('hands over the entry items and returns the rest as a frame, whatever the pieces', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const next = random(seed);
      const entry = Array.from({ length: Math.floor(next() * 6) }, () => randomValue(next, 1));
      const bundle = { resourceType: 'Bundle', id: randomValue(next, 3), entry, type: 'batch', link: [randomValue(next, 2)] };
      const text = randomText(bundle, next);
      const { frame, items, error } = split(text, next);
      assert.equal(error, undefined, `seed ${seed}: ${error?.message}`);
      assert.deepEqual(items, entry, `seed ${seed}`);
      assert.deepEqual(frame, { ...bundle, entry: [] }, `seed ${seed}`);
    }
  });

  it('accepts exactly what JSON.parse accepts, whatever is broken', () => {
    let rejected = 0;
    for (let seed = 1; seed <= 2000; seed++) {
      const next = random(seed);
      const text = randomText({ resourceType: 'Bundle', entry: [randomValue(next, 1), randomValue(next, 1)], type: 'batch' }, next);
      const at = Math.floor(next() * text.length);
      const junk = ['', '"', '\\', ',', ']', '}', '{', '[', ':', 'x', '01', '-', '.', 'e', 'tru', '\u0000', ' '][Math.floor(next() * 17)];
      const mutated = next() < 0.5 ? text.slice(0, at) + junk + text.slice(at + 1) : text.slice(0, at) + junk + text.slice(at);
      let v8: string | undefined;
      try {
        JSON.parse(mutated);
      } catch (err) {
        v8 = (err as Error).message;
      }
      const { error } = split(mutated, next);
      assert.equal(error === undefined, v8 === undefined, `seed ${seed}: ${JSON.stringify(mutated)} ${error?.message ?? ''}`);
      if (error) {
        rejected++;
        // where V8 says where, it is the same place
        const position = /at position (\d+)/.exec(v8 ?? '')?.[1];
        assert.equal(error.position, position === undefined ? error.position : Number(position), `seed ${seed}: ${JSON.stringify(mutated)}: ${error.message} / ${v8}`);
        assert.ok(error.position >= 0 && error.position <= mutated.length, error.message);
      }
    }
    assert.ok(rejected > 500, `only ${rejected} of 2000 mutations were invalid`);
  });

  it('reports where a truncated document ends, with line and column', () => {
    const text = '{\n  "resourceType": "Bundle",\n  "entry": [\n    {"a": 1},\n    {"b": [2, 3]}\n  ]\n}';
    for (let length = 0; length < text.length; length++) {
      const { error } = split(text.slice(0, length), random(length));
      assert.ok(error, `truncated at ${length}`);
      assert.equal(error.position, length, error.message);
      assert.match(error.message, /unexpected end of input at position \d+ \(line \d+, column \d+\)/);
    }
    assert.equal(split('{\n  "a": 1,\n  "b": x\n}', random(1)).error?.message, 'unexpected character "x" at position 19 (line 3, column 8)');
  });

  it('hands each item over as soon as it is complete', () => {
    const seen: number[] = [];
    const splitter = new JsonSplitter('entry', (_item, index) => seen.push(index));
    splitter.write('{"entry": [{"a": 1}, {"b"');
    assert.deepEqual(seen, [0]);
    splitter.write(': 2}, 3');
    assert.deepEqual(seen, [0, 1], 'a number may go on in the next piece');
    splitter.write(']}');
    assert.deepEqual(seen, [0, 1, 2]);
    assert.equal(splitter.end(), '{"entry": [  ]}');
  });

  it('splits only the top-level member, however its name is written, and only once', () => {
    const items = (text: string): unknown[] => split(text, random(7)).items;
    assert.deepEqual(items('{"entr\\u0079": [1, 2]}'), [1, 2]);
    assert.deepEqual(split('{"x": {"entry": [1]}, "entry": {"a": [1]}}', random(3)), { frame: { x: { entry: [1] }, entry: { a: [1] } }, items: [] });
    assert.match(split('{"entry": [1], "entry": [2]}', random(1)).error?.message ?? '', /duplicate "entry" member at position 24 /);
  });
});
