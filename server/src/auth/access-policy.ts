import { getPatientCompartmentParams } from '../definitions.ts';
import { forbidden } from '../fhir/outcome.ts';
import type { Params } from '../store/search/conditions.ts';
import { filterSql } from '../store/search/conditions.ts';
import type { Restriction } from '../store/search/execute.ts';
import { parseSearch } from '../store/search/query.ts';
import type { CareTeamPatients } from './care-team.ts';
import type { Permission, ResourceGrant } from './smart-scopes.ts';

/**
 * What one access token may do, computed once per request from its scopes and identity: SMART
 * scopes say which types and interactions; the user (or the launch's patient) says which patients.
 */
export interface AccessPolicy {
  clientId: string;
  sub: string;
  /** `Patient/<id>` or `Practitioner/<id>` for user tokens. */
  fhirUser?: string;
  /** Patient id in launch context (SMART `patient`). */
  patient?: string;
  grants: ResourceGrant[];
  /** Patient ids a `user/` scope reaches: the patient user themself, or a practitioner's care-team patients. */
  userPatients: string[];
}

/** The patients a `user/` scope reaches: a patient user themself, a practitioner the patients of their care teams. */
export async function userPatients(fhirUser: string | undefined, grants: ResourceGrant[], careTeams: CareTeamPatients): Promise<string[]> {
  if (fhirUser?.startsWith('Patient/')) return [fhirUser.slice('Patient/'.length)];
  if (fhirUser?.startsWith('Practitioner/') && grants.some((g) => g.context === 'user')) return careTeams.patientsOf(fhirUser);
  return [];
}

/** Every patient (no compartment limit), or these patient ids. */
type Reach = 'all' | string[];

export function isCompartmentType(type: string): boolean {
  return type === 'Patient' || getPatientCompartmentParams(type).length > 0;
}

function covers(g: ResourceGrant, type: string, permission: Permission): boolean {
  return (g.type === '*' || g.type === type) && g.permissions.has(permission);
}

function reach(policy: AccessPolicy, g: ResourceGrant, type: string): Reach {
  // Types outside the Patient compartment (Practitioner, Organization, Medication, …) are limited by type only.
  if (!isCompartmentType(type) || g.context === 'system') return 'all';
  if (g.context === 'patient') return policy.patient ? [policy.patient] : [];
  return policy.userPatients;
}

/** Whether any scope allows `permission` on `type` at all. */
export function allows(policy: AccessPolicy, type: string, permission: Permission): boolean {
  return policy.grants.some((g) => covers(g, type, permission));
}

/** Whether the token may do `permission` on every resource of `type`, with no compartment or query limit. */
export function allowsAll(policy: AccessPolicy, type: string, permission: Permission): boolean {
  return policy.grants.some((g) => covers(g, type, permission) && !g.query && reach(policy, g, type) === 'all');
}

/** Whether the token reaches every resource of every type: batch/transaction, system history, operations. */
export function isUnrestricted(policy: AccessPolicy, permissions: Permission[]): boolean {
  return policy.grants.some((g) => g.type === '*' && g.context === 'system' && !g.query && permissions.every((p) => g.permissions.has(p)));
}

/**
 * The SQL condition that limits reads of `type` to what the token may see: the OR of its scopes
 * that cover reading the type, each limited to its patients' compartments and granular query.
 * `undefined` means no limit; `false` means nothing.
 */
export function readRestriction(policy: AccessPolicy, baseUrl: string): Restriction {
  return (t: string, type: string, params: Params): string | undefined => {
    const ors: string[] = [];
    for (const g of policy.grants) {
      if (!covers(g, type, 'r') && !covers(g, type, 's')) continue;
      const parts: string[] = [];
      const r = reach(policy, g, type);
      if (r !== 'all') parts.push(compartmentSql(t, type, r, params));
      if (g.query) {
        const query = parseSearch(type, g.query);
        for (const f of query.filters) parts.push(filterSql(f, t, type, { params, baseUrl }));
      }
      if (parts.length === 0) return undefined;
      ors.push(parts.join(' AND '));
    }
    return ors.length ? `(${ors.map((o) => `(${o})`).join(' OR ')})` : 'false';
  };
}

function compartmentSql(t: string, type: string, patients: string[], params: Params): string {
  if (patients.length === 0) return 'false';
  if (type === 'Patient') return `${t}.id = ANY(${params.add(patients)}::text[])`;
  return `${t}.compartments && ${params.add(patients.map((id) => `Patient/${id}`))}::text[]`;
}

/**
 * Outside their compartment a patient reads the shared resources their records point to
 * (Practitioner, Organization, Medication, …) but writes only their own Subscriptions (owner-bound):
 * not the clinic's directory, alert rules or settings.
 */
const PATIENT_WRITABLE: ReadonlySet<string> = new Set(['Subscription']);

/** A `patient/` scope, or a `user/` scope of a patient user. */
function actsForPatient(policy: AccessPolicy, g: ResourceGrant): boolean {
  return g.context === 'patient' || (g.context === 'user' && !!policy.fhirUser?.startsWith('Patient/'));
}

/**
 * Whether a write of `permission` on a resource whose patient compartments are `compartments`
 * is allowed. Granular (query) scopes never authorise writes.
 */
export function writeAllowed(policy: AccessPolicy, type: string, permission: Permission, compartments: string[]): boolean {
  return policy.grants.some((g) => {
    if (!covers(g, type, permission) || g.query) return false;
    const r = reach(policy, g, type);
    if (r === 'all') return !actsForPatient(policy, g) || isCompartmentType(type) || PATIENT_WRITABLE.has(type);
    return compartments.some((c) => r.includes(c.replace(/^Patient\//, '')));
  });
}

export function requireWrite(policy: AccessPolicy, type: string, permission: Permission, compartments: string[]): void {
  if (!writeAllowed(policy, type, permission, compartments)) {
    throw forbidden(`This token may not ${permission === 'c' ? 'create' : permission === 'u' ? 'update' : 'delete'} this ${type}`);
  }
}
