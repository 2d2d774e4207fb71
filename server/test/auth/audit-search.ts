import assert from 'node:assert/strict';
import { request, type TestServer } from '../support.ts';
import { waitFor } from '../subscriptions/helpers.ts';

/** AuditEvents matching `query` (searched as an administrator), once `ready` holds for them; the trail is flushed first. */
export function auditSearch(s: TestServer): (query: string, ready?: (events: any[]) => boolean) => Promise<any[]> {
  return (query, ready = (e) => e.length > 0) =>
    waitFor(`AuditEvent?${query}`, async () => {
      await s.vigil.audit.flush();
      const res = await request('GET', `${s.fhir}/AuditEvent?${query}&_count=1000`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const events = (res.body.entry ?? []).map((e: any) => e.resource);
      return ready(events) && events;
    }, 10_000);
}
