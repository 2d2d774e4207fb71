import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Subscription } from '@medplum/fhirtypes';
import type { Database } from '../../src/store/database.ts';
import { ChangeFeed } from '../../src/store/events.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { Repository } from '../../src/store/repository.ts';
import { SubscriptionRegistry } from '../../src/subscriptions/registry.ts';
import { freshPostgresDatabase } from '../support.ts';

describe('the subscription registry (postgres)', () => {
  let fresh: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let db: Database;
  before(async () => {
    fresh = await freshPostgresDatabase();
    db = await openPostgres(fresh.url, 4);
  });
  after(async () => {
    await db.close();
    await fresh.drop();
  });

  it('reloads again when invalidated while a reload that read the table before the change is under way', async () => {
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let holding = true;
    const query = db.query.bind(db);
    // the first load's read of the subscriptions completes, then waits: it holds the table as it was
    const slow: Database = Object.assign(Object.create(db), {
      query: async (text: string, params?: unknown[]) => {
        const rows = await query(text, params);
        if (holding && text.startsWith('SELECT content FROM "Subscription"')) {
          holding = false;
          await held;
        }
        return rows;
      },
    });
    const registry = new SubscriptionRegistry(slow, 'http://localhost', true, 60_000);
    const stale = registry.refresh();
    while (holding) await new Promise((r) => setTimeout(r, 5));

    const repo = new Repository(db, 'http://localhost', new ChangeFeed());
    const sub: Subscription = {
      resourceType: 'Subscription', status: 'active', reason: 'test', criteria: 'Observation',
      channel: { type: 'rest-hook', endpoint: 'http://localhost:9/hook', payload: 'application/fhir+json' },
    };
    const { resource } = await repo.create(sub);
    registry.invalidate();
    const current = registry.refresh();
    release();
    await Promise.all([stale, current]);
    assert.ok(registry.get(resource.id as string), 'the subscription activated during the first load is known');
    assert.ok(registry.hasType('Observation'));
  });
});
