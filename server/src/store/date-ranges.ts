import type { Resource } from '@medplum/fhirtypes';
import { getResourceTypeList, getSearchParams, loadDefinitions } from '../definitions.ts';
import { DATE_RANGES, quote } from './columns.ts';
import type { Sql } from './database.ts';
import { extractParams } from './extract.ts';

const BATCH = 1000;

/**
 * Fills `date_ranges` for the resources stored before it existed: each one's date parameters are
 * extracted again, and those holding several ranges written. Run once, by migration.
 */
export async function backfillDateRanges(sql: Sql): Promise<void> {
  loadDefinitions();
  for (const type of getResourceTypeList()) {
    const dates = new Set([...getSearchParams(type).values()].filter((p) => p.type === 'date').map((p) => p.code));
    if (dates.size === 0) continue;
    const table = quote(type);
    for (let after = ''; ;) {
      const rows = await sql.query<{ id: string; content: string }>(`SELECT id, content FROM ${table} WHERE id > $1 AND NOT deleted ORDER BY id LIMIT ${BATCH}`, [after]);
      if (rows.length === 0) break;
      const ids: string[] = [];
      const ranges: string[] = [];
      for (const { id, content } of rows) {
        const found = extractParams(JSON.parse(content) as Resource, '', dates, content)[DATE_RANGES];
        if (typeof found !== 'string') continue;
        ids.push(id);
        ranges.push(found);
      }
      if (ids.length) {
        await sql.query(`UPDATE ${table} t SET ${quote(DATE_RANGES)} = u.r::jsonb FROM unnest($1::text[], $2::text[]) u(id, r) WHERE t.id = u.id`, [ids, ranges]);
      }
      after = rows[rows.length - 1].id;
    }
  }
}
