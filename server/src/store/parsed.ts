/**
 * JSON parses remembered by their text, for reads that return mostly what they returned a moment
 * ago: a bot's window read brings back the patient's newest readings of each code, nearly all of
 * which its previous run read too. The same text always parses to the same value, so a hit is never
 * stale. Values are deep-frozen, since every caller shares them. The oldest are forgotten first.
 */
export class ParsedByText<T> {
  readonly #max: number;
  readonly #parsed = new Map<string, T>();

  constructor(max: number) {
    this.#max = max;
  }

  parse(text: string): T {
    let value = this.#parsed.get(text);
    if (value === undefined) {
      value = deepFreeze(JSON.parse(text) as T);
      this.#parsed.set(text, value);
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
