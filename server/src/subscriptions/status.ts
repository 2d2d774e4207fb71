import type { Subscription } from '@medplum/fhirtypes';
import { FhirError } from '../fhir/outcome.ts';
import type { Repository } from '../store/repository.ts';

/**
 * Moves a subscription to a new status through the normal write path (so the change is versioned
 * and every replica's registry sees it), only from one of the expected statuses and only if nobody
 * changed it meanwhile (If-Match): a client's own update always wins.
 */
export async function setStatus(
  repo: Repository,
  id: string,
  status: Subscription['status'],
  error: string | undefined,
  from: Subscription['status'][],
): Promise<boolean> {
  let current;
  try {
    current = await repo.readVersion('Subscription', id);
  } catch (err) {
    if (err instanceof FhirError) return false;
    throw err;
  }
  const sub = JSON.parse(current.content as string) as Subscription;
  if (!from.includes(sub.status)) return false;
  const next: Subscription = { ...sub, status };
  if (error) next.error = error.slice(0, 1000);
  else delete next.error;
  try {
    await repo.update(next, { ifMatch: current.versionId });
    return true;
  } catch (err) {
    if (err instanceof FhirError && err.status === 412) return false;
    throw err;
  }
}
