/**
 * An incremental JSON parser for one large document that arrives in pieces (a batch or transaction
 * Bundle). It hands over each element of one array member of the top-level object (the Bundle's
 * `entry`), parsed, as soon as that element is complete, so that the document never exists in full
 * as text; everything outside those elements, the frame, is returned by `end()` with the array left
 * empty. The whole text is checked against the JSON grammar (RFC 8259): the frame here, character
 * by character; each element by `JSON.parse`, the grammar walk re-run over its text only to say
 * where it goes wrong. Errors name the position, line and column.
 */
export class JsonSyntaxError extends Error {
  readonly position: number;

  constructor(reason: string, position: number, line: number, column: number) {
    super(`${reason} at position ${position} (line ${line}, column ${column})`);
    this.position = position;
  }
}

// What the grammar allows next, between tokens.
const VALUE = 0;
const VALUE_OR_END_ARRAY = 1;
const KEY = 2;
const KEY_OR_END_OBJECT = 3;
const COLON = 4;
const COMMA_OR_END = 5;
const DONE = 6;
// Inside a token.
const STRING = 7;
const ESCAPE = 8;
const UNICODE = 9;
const NUMBER = 10;
const LITERAL = 11;
/** Inside an object or array element: only strings and brackets are followed, to find its end. */
const ITEM = 12;

const OBJECT = 0;
const ARRAY = 1;

// Number sub-states: which part was read last; the starred ones may end the number.
const MINUS = 0;
const ZERO = 1; // *
const INT = 2; // *
const DOT = 3;
const FRACTION = 4; // *
const EXP = 5;
const EXP_SIGN = 6;
const EXP_DIGITS = 7; // *
const NUMBER_MAY_END = new Set([ZERO, INT, FRACTION, EXP_DIGITS]);

/** How many backslashes come right before `end`, not looking before `start`. */
function backslashesBefore(text: string, end: number, start: number): number {
  let k = end;
  while (k > start && text.charCodeAt(k - 1) === 0x5c) k--;
  return end - k;
}

const LITERALS: Record<string, string> = { t: 'true', f: 'false', n: 'null' };
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);

export class JsonSplitter {
  /** The member whose elements are split off; none for a plain grammar check. */
  readonly #key: string | undefined;
  readonly #onItem: (value: unknown, index: number) => void;
  #state = VALUE;
  /** The state to return to when a string ends (keys and values end differently). */
  #afterString = COMMA_OR_END;
  readonly #stack: number[] = [];
  #number = MINUS;
  #literal = '';
  #literalAt = 0;
  #hexLeft = 0;

  /** Characters consumed before the current piece, and where the current line starts. */
  #offset = 0;
  #line = 1;
  #lineStart = 0;

  /** Raw text of the top-level object's key being read, and the last one read. */
  #keyText: string[] | undefined;
  #lastKey = '';
  /** Whether the split array is open (it is then the second entry of the stack), and was seen. */
  #inItems = false;
  #seen = false;
  #items = 0;
  /** Within an object or array element: bracket depth, string state, and where it started. */
  #depth = 0;
  #inString = false;
  #escaped = false;
  #itemStart = { position: 0, line: 1, lineStart: 0 };

  /** Text of the frame and of the current item, gathered across pieces. */
  readonly #frame: string[] = [];
  #item: string[] | undefined;
  /** The current piece, and where in it the frame or item text not yet gathered starts. */
  #text = '';
  #from = 0;

  constructor(key: string | undefined, onItem: (value: unknown, index: number) => void) {
    this.#key = key;
    this.#onItem = onItem;
  }

  write(text: string): void {
    this.#text = text;
    this.#from = 0;
    const n = text.length;
    let i = 0;
    while (i < n) {
      const state = this.#state;
      if (state === ITEM) {
        i = this.#scanItem(text, i);
        continue;
      }
      if (state === STRING) {
        const start = i;
        let c = text.charCodeAt(i);
        while (c !== 0x22 && c !== 0x5c && c >= 0x20 && ++i < n) c = text.charCodeAt(i);
        this.#keyText?.push(text.slice(start, i));
        if (i === n) break;
        if (c === 0x22) {
          this.#endString(i);
        } else if (c === 0x5c) {
          this.#keyText?.push('\\');
          this.#state = ESCAPE;
        } else {
          this.#fail('control character in a string', i);
        }
        i++;
        continue;
      }
      if (state <= DONE) {
        let c = text.charCodeAt(i);
        while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
          if (c === 0x0a) this.#newLine(i);
          c = text.charCodeAt(++i);
        }
        if (i === n) break;
      }
      const ch = text[i];
      switch (state) {
        case ESCAPE:
          this.#keyText?.push(ch);
          if (ch === 'u') {
            this.#hexLeft = 4;
            this.#state = UNICODE;
          } else if (ESCAPES.has(ch)) {
            this.#state = STRING;
          } else {
            this.#fail(`invalid escape \\${ch}`, i);
          }
          i++;
          break;
        case UNICODE:
          if (!/[0-9A-Fa-f]/.test(ch)) this.#fail('invalid \\u escape', i);
          this.#keyText?.push(ch);
          if (--this.#hexLeft === 0) this.#state = STRING;
          i++;
          break;
        case NUMBER:
          // a character that does not continue the number ends it and is read again as structure
          if (this.#continueNumber(ch, i)) i++;
          break;
        case LITERAL:
          if (ch !== this.#literal[this.#literalAt]) this.#fail(`invalid literal, expected "${this.#literal}"`, i);
          i++;
          if (++this.#literalAt === this.#literal.length) this.#valueDone(i);
          break;
        default:
          this.#structure(ch, i);
          i++;
      }
    }
    const rest = text.slice(this.#from);
    if (this.#item) this.#item.push(rest);
    else this.#frame.push(rest);
    this.#offset += n;
  }

  /** Ends the document and returns the frame's text (valid JSON). */
  end(): string {
    if (this.#state === ITEM) this.#checkItem(this.#item?.join('') ?? '');
    if (this.#state === NUMBER && NUMBER_MAY_END.has(this.#number) && this.#stack.length === 0) this.#state = DONE;
    if (this.#state !== DONE) this.#fail('unexpected end of input', 0);
    return this.#frame.join('');
  }

  /** Punctuation between tokens, and the first character of each token. */
  #structure(ch: string, i: number): void {
    switch (this.#state) {
      case VALUE:
      case VALUE_OR_END_ARRAY:
        if (ch === ']' && this.#state === VALUE_OR_END_ARRAY) return this.#close(ARRAY, i);
        return this.#startValue(ch, i);
      case KEY:
      case KEY_OR_END_OBJECT:
        if (ch === '}' && this.#state === KEY_OR_END_OBJECT) return this.#close(OBJECT, i);
        if (ch !== '"') this.#fail('expected a property name in double quotes', i);
        if (this.#stack.length === 1) this.#keyText = [];
        this.#afterString = COLON;
        this.#state = STRING;
        return;
      case COLON:
        if (ch !== ':') this.#fail('expected \':\' after a property name', i);
        this.#state = VALUE;
        return;
      case COMMA_OR_END: {
        const container = this.#stack[this.#stack.length - 1];
        if (ch === ',') {
          // commas between items are left out of the frame with the items
          if (this.#inItems && this.#stack.length === 2) this.#skip(i);
          this.#state = container === OBJECT ? KEY : VALUE;
          return;
        }
        if (ch === (container === OBJECT ? '}' : ']')) return this.#close(container, i);
        this.#fail(container === OBJECT ? 'expected \',\' or \'}\' after a property value' : 'expected \',\' or \']\' after an array element', i);
        return;
      }
      case DONE:
        this.#fail('unexpected text after the JSON value', i);
    }
  }

  #startValue(ch: string, i: number): void {
    if (this.#inItems && this.#stack.length === 2) {
      this.#frame.push(this.#take(i));
      this.#item = [];
      if (ch === '{' || ch === '[') {
        this.#itemStart = { position: this.#offset + i, line: this.#line, lineStart: this.#lineStart };
        this.#depth = 1;
        this.#inString = this.#escaped = false;
        this.#state = ITEM;
        return;
      }
    }
    if (ch === '{' || ch === '[') {
      const isSplit = ch === '[' && this.#stack.length === 1 && this.#key !== undefined && this.#lastKey === this.#key;
      if (isSplit) {
        if (this.#seen) this.#fail(`duplicate "${this.#key}" member`, i);
        this.#inItems = this.#seen = true;
      }
      this.#stack.push(ch === '{' ? OBJECT : ARRAY);
      this.#state = ch === '{' ? KEY_OR_END_OBJECT : VALUE_OR_END_ARRAY;
    } else if (ch === '"') {
      this.#afterString = COMMA_OR_END;
      this.#state = STRING;
    } else if (ch === '-' || (ch >= '0' && ch <= '9')) {
      this.#number = ch === '-' ? MINUS : ch === '0' ? ZERO : INT;
      this.#state = NUMBER;
    } else if (LITERALS[ch]) {
      this.#literal = LITERALS[ch];
      this.#literalAt = 1;
      this.#state = LITERAL;
    } else {
      this.#fail(`unexpected character ${JSON.stringify(ch)}`, i);
    }
  }

  /**
   * Follows an object or array element to its closing bracket, tracking only strings and depth (and
   * lines, for later errors); returns where reading goes on.
   */
  #scanItem(text: string, from: number): number {
    const n = text.length;
    let depth = this.#depth;
    let inString = this.#inString;
    let escaped = this.#escaped;
    let i = from;
    for (; i < n; i++) {
      if (inString) {
        if (escaped) {
          i++; // the piece before ended with the backslash; this character is what it escapes
          escaped = false;
        }
        // on to the next quote not escaped by an odd run of backslashes (strings are most of the text)
        let quote = text.indexOf('"', i);
        while (quote >= 0 && backslashesBefore(text, quote, i) % 2 === 1) quote = text.indexOf('"', quote + 1);
        if (quote < 0) {
          escaped = backslashesBefore(text, n, i) % 2 === 1;
          i = n;
          break;
        }
        i = quote;
        inString = false;
        continue;
      }
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        inString = true;
      } else if (c === 0x7b || c === 0x5b) {
        depth++;
      } else if (c === 0x7d || c === 0x5d) {
        if (--depth === 0) break;
      } else if (c === 0x0a) {
        this.#newLine(i);
      }
    }
    this.#depth = depth;
    this.#inString = inString;
    this.#escaped = escaped;
    if (i === n) return n;
    this.#state = COMMA_OR_END;
    this.#itemDone(i + 1);
    return i + 1;
  }

  #endString(i: number): void {
    if (this.#afterString === COLON) {
      if (this.#keyText) {
        const raw = this.#keyText.join('');
        this.#lastKey = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        this.#keyText = undefined;
      }
      this.#state = COLON;
    } else {
      this.#valueDone(i + 1);
    }
  }

  /** Reads one character of a number; false when it ends the number instead. */
  #continueNumber(ch: string, i: number): boolean {
    const digit = ch >= '0' && ch <= '9';
    const n = this.#number;
    let next: number | undefined;
    if (digit) next = n === MINUS ? (ch === '0' ? ZERO : INT) : n === ZERO ? undefined : n === DOT ? FRACTION : n === EXP || n === EXP_SIGN ? EXP_DIGITS : n;
    else if (ch === '.' && (n === ZERO || n === INT)) next = DOT;
    else if ((ch === 'e' || ch === 'E') && (n === ZERO || n === INT || n === FRACTION)) next = EXP;
    else if ((ch === '+' || ch === '-') && n === EXP) next = EXP_SIGN;
    if (next !== undefined) {
      this.#number = next;
      return true;
    }
    if (!NUMBER_MAY_END.has(n) || digit) this.#fail('invalid number', i);
    this.#valueDone(i);
    return false;
  }

  #close(container: number, i: number): void {
    this.#stack.pop();
    if (container === ARRAY && this.#inItems && this.#stack.length === 1) this.#inItems = false;
    this.#valueDone(i + 1);
  }

  /** A value ended just before `end` (an index into the current piece). */
  #valueDone(end: number): void {
    this.#state = this.#stack.length === 0 ? DONE : COMMA_OR_END;
    if (this.#item && this.#stack.length === 2) this.#itemDone(end);
  }

  /** The current item ended just before `end`: parsed, checked and handed over. */
  #itemDone(end: number): void {
    const parts = this.#item as string[];
    parts.push(this.#take(end));
    this.#item = undefined;
    const text = parts.join('');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.#checkItem(text);
    }
    this.#onItem(value, this.#items++);
  }

  /** Walks an item's text with the full grammar, from where it started, so as to throw where it goes wrong. */
  #checkItem(text: string): void {
    const check = new JsonSplitter(undefined, () => {});
    check.#offset = this.#itemStart.position;
    check.#line = this.#itemStart.line;
    check.#lineStart = this.#itemStart.lineStart;
    check.write(text);
    check.end();
    // the grammar walk and JSON.parse agree on what is valid (tested): a complete item never gets here
    this.#fail('unexpected end of input', 0);
  }

  /** The current piece's text from where gathering stopped up to `end`, which becomes the new start. */
  #take(end: number): string {
    const text = this.#text.slice(this.#from, end);
    this.#from = end;
    return text;
  }

  /** Leaves the character at `i` out of both the frame and the items. */
  #skip(i: number): void {
    this.#frame.push(this.#take(i));
    this.#from = i + 1;
  }

  #newLine(i: number): void {
    this.#line++;
    this.#lineStart = this.#offset + i + 1;
  }

  #fail(reason: string, i: number): never {
    const position = this.#offset + i;
    throw new JsonSyntaxError(reason, position, this.#line, position - this.#lineStart + 1);
  }
}
