import type { CareTeam } from '@medplum/fhirtypes';
import type { Database } from '../store/database.ts';
import { executeSearch } from '../store/search/execute.ts';
import { parseSearch } from '../store/search/query.ts';

const TTL_MS = 30_000;
const MAX = 10_000;

/**
 * The patients a practitioner may see: subjects of the active CareTeams they participate in.
 * Computed when a token is verified and cached briefly, so a care-team change takes effect
 * within TTL_MS without a query on every request.
 */
export class CareTeamPatients {
  readonly #db: Database;
  readonly #baseUrl: string;
  readonly #cache = new Map<string, { at: number; patients: Promise<string[]> }>();

  constructor(db: Database, baseUrl: string) {
    this.#db = db;
    this.#baseUrl = baseUrl;
  }

  patientsOf(practitioner: string): Promise<string[]> {
    const now = Date.now();
    const hit = this.#cache.get(practitioner);
    if (hit && now - hit.at < TTL_MS) return hit.patients;
    const patients = this.#load(practitioner);
    if (this.#cache.size > 1000) this.#cache.clear();
    this.#cache.set(practitioner, { at: now, patients });
    patients.catch(() => this.#cache.delete(practitioner));
    return patients;
  }

  async #load(practitioner: string): Promise<string[]> {
    const query = parseSearch('CareTeam', new URLSearchParams({ participant: practitioner, status: 'active', _count: String(1000) }));
    const result = await executeSearch(this.#db, query, this.#baseUrl);
    const ids = new Set<string>();
    for (const m of result.matches) {
      const ref = (JSON.parse(m.content) as CareTeam).subject?.reference ?? '';
      const match = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref);
      if (match && ids.size < MAX) ids.add(match[1]);
    }
    return [...ids];
  }
}
