import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

/** An error that is a FHIR answer: an HTTP status and the OperationOutcome that explains it. */
export class FhirError extends Error {
  readonly status: number;
  readonly outcome: OperationOutcome;
  /** Set by bulk writes: the position of the failing item. */
  item?: number;

  constructor(status: number, issues: OperationOutcomeIssue[]) {
    super(issues.map((i) => i.diagnostics ?? i.details?.text).join('; '));
    this.status = status;
    this.outcome = { resourceType: 'OperationOutcome', issue: issues };
  }
}

function issue(code: OperationOutcomeIssue['code'], text: string, expression?: string): OperationOutcomeIssue {
  return { severity: 'error', code, diagnostics: text, ...(expression ? { expression: [expression] } : {}) };
}

export const badRequest = (text: string, expression?: string): FhirError => new FhirError(400, [issue('invalid', text, expression)]);
export const notFound = (text: string): FhirError => new FhirError(404, [issue('not-found', text)]);
export const gone = (text: string): FhirError => new FhirError(410, [issue('deleted', text)]);
export const conflict = (text: string): FhirError => new FhirError(409, [issue('conflict', text)]);
export const preconditionFailed = (text: string): FhirError => new FhirError(412, [issue('conflict', text)]);
export const notSupported = (text: string, expression?: string): FhirError => new FhirError(400, [issue('not-supported', text, expression)]);
export const forbidden = (text: string): FhirError => new FhirError(403, [issue('forbidden', text)]);
export const methodNotAllowed = (text: string): FhirError => new FhirError(405, [issue('not-supported', text)]);
export const unprocessable = (issues: OperationOutcomeIssue[]): FhirError => new FhirError(422, issues);

export function informational(text: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: text }] };
}
