import { STATUS_CODES } from 'node:http';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding, Reference } from '@medplum/fhirtypes';
import { type Column, quote } from '../store/columns.ts';
import type { Sql } from '../store/database.ts';
import { type IndexRow, normalizeReference, systemCode } from '../store/extract.ts';
import { newResourceId } from '../store/ids.ts';
import { insertRowsWith, rowJson } from '../store/insert-batcher.ts';
import { normalizeString } from '../store/strings.ts';

/**
 * The AuditEvents of finished requests, built from the small records the audit trail keeps (see
 * ./audit.ts), as rows of the AuditEvent table. Plain data in, rows out, and no resource
 * definitions needed: the audit writer's thread runs this without loading the FHIR model.
 */

/** One entry of a batch or transaction, as its handler reports it (`auditEntries`). */
export interface AuditedEntry {
  method: string;
  url: string;
  status: string;
  location?: string;
}

export interface AuditedBundle {
  type: 'batch' | 'transaction';
  entries: AuditedEntry[];
}

/** Who made a request: what its AuditEvent names, taken from the token's access policy. */
export interface Requester {
  clientId: string;
  sub: string;
  fhirUser?: string;
  /** Patient id in launch context. */
  patient?: string;
  /** Patient ids a `user/` scope reaches. */
  userPatients: string[];
  /** A system scope: reaches every patient. */
  system: boolean;
}

/** What a finished request leaves behind; the AuditEvent is built from it at flush time. */
export interface Finished {
  recorded: string;
  base: string;
  method: string;
  path: string;
  query: string;
  status: number;
  address?: string;
  who?: Requester;
  location?: string;
  etag?: string;
  bundle?: AuditedBundle;
  target?: string;
}

/**
 * What writing rows needs besides the records: the AuditEvent table's columns and INSERT
 * (`insertRowsSql`), and the resource types whose tables hold compartments.
 */
export interface AuditRowContext {
  baseUrl: string;
  columns: Column[];
  statement: string;
  resourceTypes: ReadonlySet<string>;
}

const REST_TYPE: Coding = { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' };
const INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const HUMAN_USER: Coding = { system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser', display: 'human user' };
const APPLICATION: Coding = { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110150', display: 'Application' };
const SYSTEM_OBJECT: Coding = { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' };
const ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const DOMAIN_RESOURCE: Coding = { system: ROLE, code: '4', display: 'Domain Resource' };
const QUERY: Coding = { system: ROLE, code: '24', display: 'Query' };
const PATIENT: Coding = { system: ROLE, code: '1', display: 'Patient' };
const PERSON: Coding = { ...SYSTEM_OBJECT, code: '1', display: 'Person' };
const SERVER_SOURCE: Coding = { system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' };

/**
 * Inserts the AuditEvents of finished requests, the server's own `events` (bot runs; ones
 * `auditIndex` covers, given their id and meta here) and `rows` (any others, already `rowJson` texts).
 */
export async function insertAuditRows(sql: Sql, ctx: AuditRowContext, records: Finished[], events: AuditEvent[], rows: string[]): Promise<void> {
  const built = events.map((e) => {
    const event = stamped(e);
    return rowJson(event, JSON.stringify(event), ctx.baseUrl, auditIndex(event, ctx.baseUrl), ctx.columns);
  });
  await insertRowsWith(sql, ctx.statement, [...(await auditRows(sql, records, ctx)), ...built, ...rows]);
}

/** The AuditEvent rows (`rowJson` texts) of finished requests, with the patients of what they touched looked up in one query per type. */
async function auditRows(sql: Sql, records: Finished[], ctx: AuditRowContext): Promise<string[]> {
  const described = records.map((f) => ({ f, d: f.base === '/fhir/R4' ? describeFhir(f) : describeOther(f) }));
  const compartments = await lookupCompartments(sql, described, ctx.resourceTypes);
  const fhirBase = `${ctx.baseUrl}/fhir/R4`;
  return described.map(({ f, d }) => {
    const event = auditEvent(f, d, fhirBase, compartments);
    return rowJson(event, JSON.stringify(event), ctx.baseUrl, auditIndex(event, ctx.baseUrl), ctx.columns);
  });
}

/** The patient compartments of the resources successful requests touched. */
async function lookupCompartments(sql: Sql, described: { f: Finished; d: Description }[], resourceTypes: ReadonlySet<string>): Promise<Map<string, string[]>> {
  const byType = new Map<string, Set<string>>();
  for (const { f, d } of described) {
    for (const reference of touched(f, d)) {
      const [type, id] = reference.split('/');
      if (type && id && resourceTypes.has(type)) byType.set(type, (byType.get(type) ?? new Set()).add(id));
    }
  }
  const found = new Map<string, string[]>();
  for (const [type, ids] of byType) {
    const rows = await sql.query<{ id: string; compartments: string[] | null }>(`SELECT id, compartments FROM ${quote(type)} WHERE id = ANY($1)`, [[...ids]]);
    for (const row of rows) if (row.compartments?.length) found.set(`${type}/${row.id}`, row.compartments);
  }
  return found;
}

/** What was done, to what: the interaction (FHIR restful-interaction code), the action and the entities. */
interface Description {
  interaction: string;
  action: AuditEvent['action'];
  entities: AuditEventEntity[];
  /** Patients named by the request itself (a search's patient parameter). */
  patients: string[];
}

function describeFhir(f: Finished): Description {
  const segments = f.path.split('/').filter(Boolean).map(safeDecode);
  const [type, second, third, fourth] = segments;
  const located = fromLocation(f.location);
  const query = f.query ? [queryEntity(f.query)] : [];
  const instance = (id: string, version?: string): AuditEventEntity[] => [resourceEntity(`${type}/${id}`, version ?? etagVersion(f.etag)), ...query];
  const d = (interaction: string, action: AuditEvent['action'], entities: AuditEventEntity[], patients: string[] = []): Description => ({ interaction, action, entities, patients });
  if ((segments.length === 0 && f.method !== 'POST') || type === '_search') return d('search-system', 'E', query);
  // a Bundle refused as a whole was most likely a transaction: a batch refuses entries, not itself
  if (segments.length === 0) return d(f.bundle?.type ?? 'transaction', 'E', (f.bundle?.entries ?? []).map(entryEntity));
  if (type === '_history') return d('history-system', 'R', query);
  const operation = [second, third].find((s) => s?.startsWith('$'));
  if (operation) return d('operation', 'E', second === operation ? query : instance(second));
  if (second === undefined || second === '_search') {
    switch (f.method) {
      case 'GET':
      case 'HEAD':
        return d('search-type', 'E', query, searchPatients(type, f.query));
      case 'POST':
        if (second === '_search') return d('search-type', 'E', query, searchPatients(type, f.query));
        return d('create', 'C', located ? [resourceEntity(located.reference, located.version)] : []);
      case 'PUT':
        return d('update', f.status === 201 ? 'C' : 'U', located ? [resourceEntity(located.reference, located.version), ...query] : query);
      case 'PATCH':
        return d('patch', 'U', located ? [resourceEntity(located.reference, located.version), ...query] : query);
      default:
        return d('delete', 'D', query);
    }
  }
  if (second === '_history') return d('history-type', 'R', query);
  if (third === '_history') return fourth === undefined ? d('history-instance', 'R', instance(second)) : d('vread', 'R', instance(second, fourth));
  switch (f.method) {
    case 'PUT':
      return d('update', f.status === 201 ? 'C' : 'U', instance(second, located?.version));
    case 'PATCH':
      return d('patch', 'U', instance(second, located?.version));
    case 'DELETE':
      return d('delete', 'D', instance(second));
    default:
      return d('read', 'R', instance(second));
  }
}

/** The device gateway (readings in, mappings and dead letters managed) and the admin API (users and clients). */
function describeOther(f: Finished): Description {
  const entity: AuditEventEntity = {
    type: SYSTEM_OBJECT,
    role: DOMAIN_RESOURCE,
    ...(f.target ? { name: f.target } : {}),
    description: `${f.base}${f.path}`,
    ...(f.query ? { query: base64(f.query) } : {}),
  };
  const byMethod: Record<string, [string, AuditEvent['action']]> = { POST: ['create', 'C'], PUT: ['update', 'U'], DELETE: ['delete', 'D'] };
  const [interaction, action] = byMethod[f.method] ?? ['read', 'R'];
  return { interaction, action, entities: [entity], patients: [] };
}

/**
 * The resources a request reached, whose patients the AuditEvent names: none for a refused request
 * or entry, so that a refusal never puts an event in the compartment of the patient it protected.
 */
function touched(f: Finished, d: Description): string[] {
  if (f.status >= 400) return [];
  const succeeded = d.entities.filter((e) => !e.detail?.some((x) => x.type === 'status' && !/^2/.test(x.valueString ?? '')));
  return succeeded.flatMap((e) => (e.what?.reference ? [e.what.reference] : []));
}

/** Whether the token reaches the patient a search names: only then does the search put its event in their compartment. */
function reaches(who: Requester | undefined, patient: string): boolean {
  if (!who) return false;
  const id = patient.slice('Patient/'.length);
  return who.system || who.patient === id || who.userPatients.includes(id);
}

function auditEvent(f: Finished, d: Description, fhirBase: string, compartments: Map<string, string[]>): AuditEvent {
  const patients = new Set(f.status < 400 ? d.patients.filter((p) => reaches(f.who, p)) : []);
  for (const reference of touched(f, d)) for (const p of compartments.get(reference) ?? []) patients.add(p);
  return {
    resourceType: 'AuditEvent',
    id: newResourceId(),
    meta: { versionId: '1', lastUpdated: f.recorded },
    type: REST_TYPE,
    subtype: [{ system: INTERACTION, code: d.interaction }],
    action: d.action,
    recorded: f.recorded,
    outcome: f.status < 400 ? '0' : f.status < 500 ? '4' : '8',
    outcomeDesc: `${f.status} ${STATUS_CODES[f.status] ?? (f.status === 499 ? 'Client Closed Request' : '')}`.trim(),
    agent: agents(f, fhirBase),
    source: { site: fhirBase, observer: { display: 'Vigil' }, type: [SERVER_SOURCE] },
    entity: [...d.entities, ...[...patients].map((p) => ({ what: { reference: p }, type: PERSON, role: PATIENT }))],
  };
}

function agents(f: Finished, fhirBase: string): AuditEventAgent[] {
  const network = f.address ? { address: f.address, type: '2' as const } : undefined;
  const requester = f.who;
  if (!requester) return [{ type: { coding: [APPLICATION] }, who: { display: 'unauthenticated' }, requestor: true, network }];
  const client: AuditEventAgent = {
    type: { coding: [APPLICATION] },
    who: { identifier: { system: `${fhirBase.replace(/\/fhir\/R4$/, '')}/oauth2/clients`, value: requester.clientId }, display: requester.clientId },
    altId: requester.clientId,
    requestor: !requester.fhirUser,
    ...(requester.fhirUser ? {} : { network }),
  };
  if (!requester.fhirUser) return [client];
  return [{ type: { coding: [HUMAN_USER] }, who: { reference: requester.fhirUser }, altId: requester.sub, requestor: true, network }, client];
}

function resourceEntity(reference: string, version?: string): AuditEventEntity {
  return {
    what: { reference },
    type: SYSTEM_OBJECT,
    role: DOMAIN_RESOURCE,
    ...(version ? { detail: [{ type: 'versionId', valueString: version }] } : {}),
  };
}

function queryEntity(query: string): AuditEventEntity {
  return { type: SYSTEM_OBJECT, role: QUERY, query: base64(query) };
}

function entryEntity(e: AuditedEntry): AuditEventEntity {
  const located = fromLocation(e.location);
  const [path] = e.url.split('?');
  const [type, id] = path.split('/');
  const what: Reference | undefined = located ? { reference: located.reference } : id ? { reference: `${type}/${id}` } : undefined;
  return {
    ...(what ? { what } : {}),
    type: SYSTEM_OBJECT,
    role: DOMAIN_RESOURCE,
    description: `${e.method} ${e.url}`.slice(0, 1000),
    detail: [{ type: 'status', valueString: e.status }, ...(located?.version ? [{ type: 'versionId', valueString: located.version }] : [])],
  };
}

/** `…/Observation/1/_history/2` → Observation/1, version 2. */
function fromLocation(location: string | undefined): { reference: string; version?: string } | undefined {
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/.exec(location ?? '');
  return m ? { reference: `${m[1]}/${m[2]}`, version: m[3] } : undefined;
}

const etagVersion = (etag: string | undefined): string | undefined => /^W\/"([^"]+)"$/.exec(etag ?? '')?.[1];

/** The patients a search names outright: `patient`, `subject` (as Patient) and a Patient search's `_id`. */
function searchPatients(type: string, query: string): string[] {
  const out: string[] = [];
  for (const [key, value] of new URLSearchParams(query)) {
    const code = key.split(':')[0];
    for (const v of value.split(',')) {
      if (type === 'Patient' && code === '_id') out.push(`Patient/${v}`);
      else if (code === 'patient' || code === 'subject') {
        const m = /^(?:.*\/)?(Patient\/[A-Za-z0-9\-.]{1,64})$/.exec(v) ?? (code === 'patient' && /^[A-Za-z0-9\-.]{1,64}$/.test(v) ? [v, `Patient/${v}`] : null);
        if (m) out.push(m[1]);
      }
    }
  }
  return out;
}

/**
 * The search columns of an AuditEvent built here, read straight from its known shape: the generic
 * FHIRPath indexer costs ~170 µs per AuditEvent, as much CPU as the request it records. Tested to
 * equal `extractIndex` on what the server writes; AuditEvents of any other shape go through it.
 */
export function auditIndex(e: AuditEvent, baseUrl: string): IndexRow {
  const text: string[] = [];
  const entities = e.entity ?? [];
  const coded = (code: string, codings: (Coding | undefined)[]): string[] | null =>
    list(codings.flatMap((c) => {
      if (!c) return [];
      if (c.display) text.push(`${code}|${normalizeString(c.display)}`);
      return systemCode(c.system, c.code);
    }));
  const plain = (values: (string | undefined)[]): string[] | null => list(values.flatMap((v) => (v ? systemCode(undefined, v) : [])));
  const references = (refs: (Reference | undefined)[]): string[] => refs.flatMap((r) => (r?.reference ? [normalizeReference(r.reference, baseUrl)] : []));
  const addresses = e.agent.flatMap((a) => (a.network?.address ? [a.network.address] : []));
  const agentNames = e.agent.flatMap((a) => (a.name ? [a.name] : []));
  const names = entities.flatMap((x) => (x.name ? [x.name] : []));
  const patients = [...new Set(references([...e.agent.map((a) => a.who), ...entities.map((x) => x.what)]).filter((r) => r.startsWith('Patient/')))];
  // in the order of the AuditEvent search parameters, as the generic indexer collects token texts
  const row: IndexRow = {
    _profile: null,
    _security: null,
    _source: null,
    _tag: null,
    action: plain([e.action]),
    address: list(addresses.map(normalizeString)),
    agent: list(references(e.agent.map((a) => a.who))),
    'agent-name': list(agentNames.map(normalizeString)),
    'agent-role': null,
    altid: plain(e.agent.map((a) => a.altId)),
    date_start: e.recorded,
    date_end: new Date(Date.parse(e.recorded) + 1).toISOString(),
    entity: list(references(entities.map((x) => x.what))),
    'entity-name': list(names.map(normalizeString)),
    'entity-role': coded('entity-role', entities.map((x) => x.role)),
    'entity-type': coded('entity-type', entities.map((x) => x.type)),
    outcome: plain([e.outcome]),
    patient: list(patients),
    policy: null,
    site: plain([e.source.site]),
    source: references([e.source.observer])[0] ?? null,
    subtype: coded('subtype', e.subtype ?? []),
    type: coded('type', [e.type]),
  };
  row.token_text = list(text);
  row.string_exact = list([...addresses.map((a) => `address|${a}`), ...agentNames.map((n) => `agent-name|${n}`), ...names.map((n) => `entity-name|${n}`)]);
  row.reference_identifier = list(e.agent.flatMap((a) => {
    const id = a.who?.identifier;
    return id?.value ? [`agent|${id.system ?? ''}|${id.value}`, `agent|${id.value}`] : [];
  }));
  row.compartments = list(patients);
  row.date_ranges = null; // one date, `recorded`
  return row;
}

/** The server's own AuditEvent as stored: a new id, version 1, updated when recorded. */
export const stamped = (e: AuditEvent): AuditEvent => ({ ...e, id: newResourceId(), meta: { versionId: '1', lastUpdated: e.recorded } });

/** Whether `auditIndex` indexes the AuditEvent completely: no meta, agent roles or policies, and no reference by identifier but an agent's. */
export function auditIndexCovers(e: AuditEvent): boolean {
  const { meta } = e;
  if (meta?.profile || meta?.security || meta?.tag || meta?.source) return false;
  if (e.agent.some((a) => a.role || a.policy)) return false;
  return !e.source.observer?.identifier && !(e.entity ?? []).some((x) => x.what?.identifier);
}

/** Distinct values, or null for none (an absent column value). */
function list(values: string[]): string[] | null {
  return values.length ? [...new Set(values)] : null;
}

const base64 = (text: string): string => Buffer.from(text).toString('base64');

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
