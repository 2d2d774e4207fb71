import type { SearchParam } from '../definitions.ts';

/**
 * How each search parameter is stored as typed columns of its resource table.
 * token/string/uri: text[]; reference: text (single-valued) or text[]; date: a [start, end) pair;
 * number: numeric[]; quantity: numeric[] with an aligned text[] of units; composite: jsonb tuples.
 */
export interface Column {
  readonly name: string;
  readonly sqlType: string;
  readonly index?: 'gin' | 'btree';
}

/** Per-table columns that serve modifiers across all parameters of the table. */
export const TOKEN_TEXT = 'token_text';
export const STRING_EXACT = 'string_exact';
export const REFERENCE_IDENTIFIER = 'reference_identifier';
export const COMPARTMENTS = 'compartments';
/** Per date parameter holding several ranges, those ranges (`{ code: [{ s, e }] }`); null for the usual single range. */
export const DATE_RANGES = 'date_ranges';

export function paramColumns(param: SearchParam): Column[] {
  const name = param.code;
  switch (param.type) {
    case 'token':
    case 'uri':
      return [{ name, sqlType: 'text[]', index: 'gin' }];
    case 'string':
      return [{ name, sqlType: 'text[]' }];
    case 'reference':
      return param.array ? [{ name, sqlType: 'text[]', index: 'gin' }] : [{ name, sqlType: 'text', index: 'btree' }];
    case 'date':
      return [
        { name: `${name}_start`, sqlType: 'timestamptz', index: 'btree' },
        { name: `${name}_end`, sqlType: 'timestamptz' },
      ];
    case 'number':
      return [{ name, sqlType: 'numeric[]' }];
    case 'quantity':
      return [
        { name, sqlType: 'numeric[]' },
        { name: `${name}_unit`, sqlType: 'text[]' },
      ];
    case 'composite':
      return [{ name, sqlType: 'jsonb' }];
  }
}

export const quote = (identifier: string): string => `"${identifier.replaceAll('"', '""')}"`;
