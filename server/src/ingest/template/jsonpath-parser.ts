/**
 * Parser for JSONPath as Json.NET reads it (the dialect MedTech templates are written in):
 * `$.a.b`, `$['a-b']`, `$.a-b`, `[0]`, `[0,2]`, `[1:3]`, `[*]`, `..name`, `..[?(…)]`, and filters
 * with `@.x` (or Json.NET's shorthand `@x`), `$…`, literals, `== != === !== < <= > >=`, `&& ||`
 * and parentheses. Anything else is a syntax error at compile time, never at message time.
 */

export type Selector =
  | { readonly kind: 'name'; readonly names: readonly string[] }
  | { readonly kind: 'wildcard' }
  | { readonly kind: 'index'; readonly indexes: readonly number[] }
  | { readonly kind: 'slice'; readonly start?: number; readonly end?: number; readonly step?: number }
  | { readonly kind: 'filter'; readonly test: Filter };

export interface Segment {
  /** `..`: the selector applies at every depth (for filters: to each node itself, as in Json.NET). */
  readonly scan: boolean;
  readonly selector: Selector;
}

export interface Path {
  /** `$` is the document root; `@` the filter's candidate node. */
  readonly root: '$' | '@';
  readonly segments: readonly Segment[];
}

export type Scalar = string | number | boolean | null;
export type Operand = { readonly kind: 'path'; readonly path: Path } | { readonly kind: 'literal'; readonly value: Scalar };
export type Comparison = '==' | '!=' | '<' | '<=' | '>' | '>=';

export type Filter =
  | { readonly kind: 'and' | 'or'; readonly left: Filter; readonly right: Filter }
  | { readonly kind: 'exists'; readonly path: Path }
  | { readonly kind: 'compare'; readonly op: Comparison; readonly left: Operand; readonly right: Operand };

/** Characters that end an unquoted member name; inside filters, operator characters do too. */
const NAME_END = new Set(['.', '[', ']', '(', ')', ' ', '\t', '\n', '\r']);
const FILTER_NAME_END = new Set([...NAME_END, '=', '!', '<', '>', '&', '|', ',']);
const OPERATORS: readonly [string, Comparison][] = [
  ['===', '=='],
  ['!==', '!='],
  ['==', '=='],
  ['!=', '!='],
  ['<=', '<='],
  ['>=', '>='],
  ['<', '<'],
  ['>', '>'],
];

export function parseJsonPath(source: string): Path {
  const parser = new Parser(source);
  const path = parser.path(false);
  parser.skipSpace();
  if (!parser.done()) parser.fail('unexpected character');
  return path;
}

class Parser {
  private readonly text: string;
  private pos = 0;

  constructor(text: string) {
    this.text = text;
  }

  done(): boolean {
    return this.pos >= this.text.length;
  }

  fail(message: string): never {
    const near = this.done() ? 'end of expression' : `'${this.text[this.pos]}' at position ${this.pos}`;
    throw new SyntaxError(`JSONPath: ${message} (${near})`);
  }

  skipSpace(): void {
    while (!this.done() && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private peek(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  private expect(s: string): void {
    this.skipSpace();
    if (!this.peek(s)) this.fail(`expected '${s}'`);
    this.pos += s.length;
  }

  /** A path; outside filters a leading `$` is optional, as Json.NET allows `Body.x`. */
  path(inFilter: boolean): Path {
    this.skipSpace();
    if (this.peek('$') || this.peek('@')) {
      const root = this.text[this.pos] as '$' | '@';
      this.pos++;
      if (root === '@' && !inFilter) this.fail('@ is only valid inside a filter');
      // Json.NET reads `@name` as `@.name`.
      if (root === '@' && !this.done() && !FILTER_NAME_END.has(this.text[this.pos]!)) {
        return { root, segments: [this.member(false, true), ...this.segments(true)] };
      }
      return { root, segments: this.segments(inFilter) };
    }
    if (inFilter) this.fail('expected a path starting with @ or $');
    if (this.done()) this.fail('empty expression');
    if (this.peek('[')) return { root: '$', segments: this.segments(false) };
    return { root: '$', segments: [this.member(false, false), ...this.segments(false)] };
  }

  private segments(inFilter: boolean): Segment[] {
    const out: Segment[] = [];
    for (;;) {
      if (this.peek('..')) {
        this.pos += 2;
        out.push(this.peek('[') ? { scan: true, selector: this.bracket() } : this.member(true, inFilter));
      } else if (this.peek('.')) {
        this.pos++;
        out.push(this.member(false, inFilter));
      } else if (this.peek('[')) {
        out.push({ scan: false, selector: this.bracket() });
      } else {
        return out;
      }
    }
  }

  private member(scan: boolean, inFilter: boolean): Segment {
    const end = inFilter ? FILTER_NAME_END : NAME_END;
    const start = this.pos;
    while (!this.done() && !end.has(this.text[this.pos]!)) this.pos++;
    const name = this.text.slice(start, this.pos);
    if (name === '') this.fail('expected a member name');
    return { scan, selector: name === '*' ? { kind: 'wildcard' } : { kind: 'name', names: [name] } };
  }

  private bracket(): Selector {
    this.pos++; // [
    this.skipSpace();
    let selector: Selector;
    if (this.peek('?')) {
      this.pos++;
      this.expect('(');
      const test = this.or();
      this.expect(')');
      selector = { kind: 'filter', test };
    } else if (this.peek('*')) {
      this.pos++;
      selector = { kind: 'wildcard' };
    } else if (this.peek("'") || this.peek('"')) {
      const names = [this.quoted()];
      while (this.comma()) names.push(this.quoted());
      selector = { kind: 'name', names };
    } else {
      selector = this.indexes();
    }
    this.expect(']');
    return selector;
  }

  private comma(): boolean {
    this.skipSpace();
    if (!this.peek(',')) return false;
    this.pos++;
    this.skipSpace();
    return true;
  }

  private indexes(): Selector {
    const parts: (number | undefined)[] = [this.optionalInteger()];
    let colons = 0;
    this.skipSpace();
    while (this.peek(':') && colons < 2) {
      this.pos++;
      colons++;
      parts.push(this.optionalInteger());
      this.skipSpace();
    }
    if (colons > 0) {
      if (parts[2] === 0) this.fail('slice step cannot be 0');
      return { kind: 'slice', start: parts[0], end: parts[1], step: parts[2] };
    }
    const first = parts[0];
    if (first === undefined) this.fail('expected an index, a quoted name, * or ?(…)');
    const indexes = [first];
    while (this.comma()) {
      const next = this.optionalInteger();
      if (next === undefined) this.fail('expected an index');
      indexes.push(next);
    }
    if (indexes.some((i) => i < 0)) this.fail('negative indexes are not supported; use a slice such as [-1:]');
    return { kind: 'index', indexes };
  }

  private optionalInteger(): number | undefined {
    this.skipSpace();
    const match = /^-?\d+/.exec(this.text.slice(this.pos));
    if (!match) return undefined;
    this.pos += match[0].length;
    return Number(match[0]);
  }

  private quoted(): string {
    const quote = this.text[this.pos]!;
    let out = '';
    this.pos++;
    while (!this.done()) {
      const c = this.text[this.pos++]!;
      if (c === quote) return out;
      if (c === '\\') {
        if (this.done()) break;
        const e = this.text[this.pos++]!;
        out += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
      } else {
        out += c;
      }
    }
    return this.fail('unterminated string');
  }

  private or(): Filter {
    let left = this.and();
    for (this.skipSpace(); this.peek('||'); this.skipSpace()) {
      this.pos += 2;
      left = { kind: 'or', left, right: this.and() };
    }
    return left;
  }

  private and(): Filter {
    let left = this.term();
    for (this.skipSpace(); this.peek('&&'); this.skipSpace()) {
      this.pos += 2;
      left = { kind: 'and', left, right: this.term() };
    }
    return left;
  }

  private term(): Filter {
    this.skipSpace();
    if (this.peek('(')) {
      this.pos++;
      const inner = this.or();
      this.expect(')');
      return inner;
    }
    const left = this.operand();
    this.skipSpace();
    const op = OPERATORS.find(([token]) => this.peek(token));
    if (!op) {
      if (left.kind !== 'path') this.fail('expected a comparison operator');
      if (this.peek('=~')) this.fail('regular expressions are not supported');
      return { kind: 'exists', path: left.path };
    }
    this.pos += op[0].length;
    return { kind: 'compare', op: op[1], left, right: this.operand() };
  }

  private operand(): Operand {
    this.skipSpace();
    if (this.peek('@') || this.peek('$')) return { kind: 'path', path: this.path(true) };
    if (this.peek("'") || this.peek('"')) return { kind: 'literal', value: this.quoted() };
    const match = /^(true|false|null|-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/.exec(this.text.slice(this.pos));
    if (!match) return this.fail('expected a path, string, number, true, false or null');
    this.pos += match[0].length;
    const token = match[0];
    return { kind: 'literal', value: token === 'null' ? null : token === 'true' ? true : token === 'false' ? false : Number(token) };
  }
}
