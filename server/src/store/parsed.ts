/**
 * JSON parses remembered by the resource version they are of, for reads that return mostly what
 * they returned a moment ago: a bot's window read brings back the patient's newest readings of each
 * code, nearly all of which its previous run read too. A version's text never changes, so a hit is
 * never stale. Values are deep-frozen, since every caller shares them. The oldest are forgotten first.
 */
export class ParsedVersions<T> {
  readonly #max: number;
  readonly #parsed = new Map<string, T>();

  constructor(max: number) {
    this.#max = max;
  }

  /** `key` names the version (`id/versionId`); `text` is its JSON, parsed only when the key is new. */
  parse(key: string, text: string): T {
    let value = this.#parsed.get(key);
    if (value === undefined) {
      value = deepFreeze(JSON.parse(text) as T);
      this.#parsed.set(key, value);
      if (this.#parsed.size > this.#max) this.#parsed.delete(this.#parsed.keys().next().value as string);
    }
    return value;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
