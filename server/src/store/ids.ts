import { randomUUID } from 'node:crypto';

/**
 * A new resource id: a UUID version 7 (RFC 9562), whose first 48 bits are the Unix time in
 * milliseconds and the other 74 random. Ids made close in time sit close together in every index
 * keyed by id (the tables' and their histories' primary keys), so an insert touches the pages recent
 * inserts touched rather than a random page of an index as big as the table: fewer pages to read
 * and, after each checkpoint, fewer whole pages written to the WAL. The random part comes from
 * `randomUUID`'s cached entropy (version 4: the same layout past the version digit).
 */
export function newResourceId(now = Date.now()): string {
  const time = now.toString(16).padStart(12, '0');
  return `${time.slice(0, 8)}-${time.slice(8)}-7${randomUUID().slice(15)}`;
}
