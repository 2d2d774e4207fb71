import { EventEmitter } from 'node:events';
import type { Resource } from '@medplum/fhirtypes';

/** One committed change; emitted after the database transaction that made it has committed. */
export interface ChangeEvent {
  interaction: 'create' | 'update' | 'delete';
  resourceType: string;
  id: string;
  versionId: string;
  lastUpdated: string;
  resource?: Resource;
}

export class ChangeFeed {
  readonly #emitter = new EventEmitter();

  publish(events: readonly ChangeEvent[]): void {
    for (const event of events) this.#emitter.emit('change', event);
  }

  subscribe(listener: (event: ChangeEvent) => void): () => void {
    this.#emitter.on('change', listener);
    return () => this.#emitter.off('change', listener);
  }
}
