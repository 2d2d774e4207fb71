import type { AuditEvent, AuditEventAgent, AuditEventEntity, AuditEventEntityDetail, Coding } from '@medplum/fhirtypes';

/**
 * AuditEvents of security events that are no FHIR request: the authorization server's (tokens,
 * sign-in, consent, introspection, revocation), websocket bindings and MQTT device sessions. They
 * go to the batched audit trail (`AuditTrail.recordEvent`) like the bot runs', searchable by
 * `type`, `subtype`, `outcome`, `altid` (user name or client id), `agent` and `address`. They
 * never carry a secret: no password, token, assertion or code.
 */

export const SECURITY_EVENT_TYPE = 'https://vigil.health/fhir/CodeSystem/audit-event-type';
export const SECURITY_EVENT_SUBTYPE = 'https://vigil.health/fhir/CodeSystem/security-event';

const TYPES: Record<SecurityEvent['kind'], Coding> = {
  oauth: { system: SECURITY_EVENT_TYPE, code: 'oauth', display: 'Authorization server' },
  websocket: { system: SECURITY_EVENT_TYPE, code: 'websocket', display: 'Websocket notification channel' },
  mqtt: { system: SECURITY_EVENT_TYPE, code: 'mqtt', display: 'MQTT device gateway' },
};
const HUMAN_USER: Coding = { system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser', display: 'human user' };
const APPLICATION: Coding = { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110150', display: 'Application' };
const SERVER_SOURCE: Coding = { system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' };
const SYSTEM_OBJECT: Coding = { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' };
const DOMAIN_RESOURCE: Coding = { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '4', display: 'Domain Resource' };

/**
 * The websocket or MQTT connection an event belongs to, named (`entity-name`) so that its connect,
 * bindings and disconnect can be found together.
 */
export function connectionEntity(name: string, detail: AuditEventEntityDetail[] = []): AuditEventEntity {
  return { type: SYSTEM_OBJECT, name, description: 'connection', ...(detail.length ? { detail } : {}) };
}

/** A resource the event was about (a Subscription a websocket bound to). */
export function resourceEntity(reference: string): AuditEventEntity {
  return { type: SYSTEM_OBJECT, role: DOMAIN_RESOURCE, what: { reference } };
}

export interface SecurityEvent {
  kind: 'oauth' | 'websocket' | 'mqtt';
  /** What happened: `token`, `login`, `consent`, `introspection`, `revocation`, `connect`, `bind`, `bind-with-token`, `disconnect`. */
  subtype: string;
  action: AuditEvent['action'];
  /** Why it was refused (an OAuth error code, …); absent for a success. */
  failure?: string;
  /** The signed-in (or signing-in) user's name. */
  username?: string;
  /** Their Practitioner or Patient. */
  fhirUser?: string;
  clientId?: string;
  address?: string;
  entity?: AuditEventEntity[];
}

export function securityAuditEvent(e: SecurityEvent, baseUrl: string): AuditEvent {
  const network = e.address ? { address: e.address.replace(/^::ffff:/, ''), type: '2' as const } : undefined;
  const human = e.username !== undefined || e.fhirUser !== undefined;
  const agent: AuditEventAgent[] = [];
  if (human) {
    agent.push({
      type: { coding: [HUMAN_USER] },
      who: e.fhirUser ? { reference: e.fhirUser } : { identifier: { system: `${baseUrl}/users`, value: e.username } },
      ...(e.username !== undefined ? { altId: e.username } : {}),
      requestor: true,
      network,
    });
  }
  if (e.clientId !== undefined || !human) {
    agent.push({
      type: { coding: [APPLICATION] },
      who: e.clientId !== undefined ? { identifier: { system: `${baseUrl}/oauth2/clients`, value: e.clientId }, display: e.clientId } : { display: 'unauthenticated' },
      ...(e.clientId !== undefined ? { altId: e.clientId } : {}),
      requestor: !human,
      ...(human ? {} : { network }),
    });
  }
  return {
    resourceType: 'AuditEvent',
    type: TYPES[e.kind],
    subtype: [{ system: SECURITY_EVENT_SUBTYPE, code: e.subtype }],
    action: e.action,
    recorded: new Date().toISOString(),
    outcome: e.failure === undefined ? '0' : '4',
    outcomeDesc: (e.failure ?? 'success').slice(0, 200),
    agent,
    source: { site: `${baseUrl}/fhir/R4`, observer: { display: 'Vigil' }, type: [SERVER_SOURCE] },
    ...(e.entity?.length ? { entity: e.entity } : {}),
  };
}
