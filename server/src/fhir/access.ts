import type { Response } from 'express';
import type { Sql } from '../store/database.ts';
import type { Restriction } from '../store/search/execute.ts';
import type { PatchBody } from './patch.ts';

/**
 * The contract between the REST handlers and the auth layer for interactions a handler runs on
 * the client's behalf (batch and transaction entries): the auth layer puts a check and the read
 * restriction in `res.locals`, and the handler applies them to each entry exactly where the
 * equivalent single request would have been checked.
 */
export interface Interaction {
  /** GET (HEAD counts as GET), POST, PUT, PATCH or DELETE. */
  method: string;
  /** The path below the FHIR base, split and decoded: `[type, id, …]`; `[type]` with criteria is conditional. */
  path: string[];
  body?: unknown;
  /** PATCH: the patch document, parsed only if the check needs the patched resource. */
  patch?: () => PatchBody;
  /** POST with If-None-Exist / `request.ifNoneExist`. */
  ifNoneExist?: boolean;
  /** Inside a batch or transaction. */
  entry?: boolean;
}

/** Throws the 403 or 404 the interaction would get as a request of its own; `sql` sees the transaction's writes so far. */
export type InteractionCheck = (sql: Sql, interaction: Interaction) => Promise<void>;

export interface RequestAccess {
  check?: InteractionCheck;
  restriction?: Restriction;
  /** The user behind the token (`Practitioner/…`, `Patient/…`), absent for clients acting on their own. */
  user?: string;
}

/** What the auth layer left in `res.locals` for this request (nothing: no limits, as for internal callers). */
export function requestAccess(res: Response): RequestAccess {
  return {
    check: res.locals.checkInteraction as InteractionCheck | undefined,
    restriction: res.locals.restriction as Restriction | undefined,
    user: (res.locals.access as { fhirUser?: string } | undefined)?.fhirUser,
  };
}
