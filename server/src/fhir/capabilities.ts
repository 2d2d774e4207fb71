import type { CapabilityStatement, CapabilityStatementRestResource, StructureDefinition } from '@medplum/fhirtypes';
import { conformanceResources } from '../profiles.ts';
import { getResourceTypeList, getSearchParams } from '../definitions.ts';
import { withSubscriptions } from '../subscriptions/capabilities.ts';

const OPERATION_BASE = 'http://hl7.org/fhir/OperationDefinition/';
const VALIDATE = { name: 'validate', definition: `${OPERATION_BASE}Resource-validate` };
const OPERATIONS: Record<string, { name: string; definition: string }[]> = {
  Observation: [
    { name: 'lastn', definition: `${OPERATION_BASE}Observation-lastn` },
    { name: 'stats', definition: `${OPERATION_BASE}Observation-stats` },
    { name: 'timeseries', definition: 'https://vigil.health/fhir/OperationDefinition/Observation-timeseries' },
  ],
  Patient: [{ name: 'everything', definition: `${OPERATION_BASE}Patient-everything` }],
  PlanDefinition: [{ name: 'evaluate-rule', definition: 'https://vigil.health/fhir/OperationDefinition/PlanDefinition-evaluate-rule' }],
};

const SYSTEM_PARAMS: [string, 'token' | 'date' | 'uri', string][] = [
  ['_id', 'token', 'Resource-id'],
  ['_lastUpdated', 'date', 'Resource-lastUpdated'],
  ['_tag', 'token', 'Resource-tag'],
  ['_profile', 'uri', 'Resource-profile'],
  ['_security', 'token', 'Resource-security'],
  ['_source', 'uri', 'Resource-source'],
];

/** Vigil's own profiles of the type (fhir-profiles/), validated when a resource claims them. */
function profileUrls(type: string): string[] | undefined {
  const urls = conformanceResources()
    .filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition' && r.type === type)
    .map((sd) => sd.url as string);
  return urls.length ? urls : undefined;
}

/**
 * The `_revinclude` values a search of `type` takes: each reference parameter of any type that may
 * point to it (`Source:param`), and `Source:*` for each such type.
 */
function revIncludes(type: string): string[] {
  return getResourceTypeList().flatMap((source) => {
    const params = [...getSearchParams(source).values()].filter((p) => p.type === 'reference' && (p.targets.length === 0 || p.targets.includes(type)));
    return params.length ? [`${source}:*`, ...params.map((p) => `${source}:${p.code}`)] : [];
  });
}

/** The CapabilityStatement lists exactly what this server does: every R4 type, its interactions and indexed parameters. */
export function capabilityStatement(baseUrl: string, version: string): CapabilityStatement {
  const resources: CapabilityStatementRestResource[] = getResourceTypeList().map((type) => ({
    type,
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
    interaction: ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'].map((code) => ({
      code: code as 'read',
    })),
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalRead: 'full-support',
    conditionalCreate: true,
    conditionalUpdate: true,
    conditionalDelete: 'multiple',
    searchInclude: [`${type}:*`, ...[...getSearchParams(type).values()].filter((p) => p.type === 'reference').map((p) => `${type}:${p.code}`)],
    searchRevInclude: revIncludes(type),
    supportedProfile: profileUrls(type),
    operation: [...(OPERATIONS[type] ?? []), VALIDATE],
    searchParam: [
      { name: '_id', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id' },
      { name: '_lastUpdated', type: 'date', definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated' },
      ...[...getSearchParams(type).values()].map((p) => ({
        name: p.code,
        type: p.type,
        definition: p.definition.url ?? `http://hl7.org/fhir/SearchParameter/Resource${p.code.replace('_', '-')}`,
      })),
    ],
  }));
  return withSubscriptions(baseUrl, {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    publisher: 'Vigil',
    kind: 'instance',
    software: { name: 'Vigil', version },
    implementation: { description: 'Vigil remote patient monitoring FHIR server', url: `${baseUrl}/fhir/R4` },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json', 'application/fhir+json'],
    rest: [
      {
        mode: 'server',
        // SMART App Launch: where to get tokens (also in /.well-known/smart-configuration)
        security: {
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }], text: 'OAuth2 using SMART-on-FHIR profile' }],
          extension: [{
            url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
            extension: [
              { url: 'token', valueUri: `${baseUrl}/oauth2/token` },
              { url: 'authorize', valueUri: `${baseUrl}/oauth2/authorize` },
              { url: 'introspect', valueUri: `${baseUrl}/oauth2/introspect` },
              { url: 'revoke', valueUri: `${baseUrl}/oauth2/revoke` },
            ],
          }],
        },
        resource: resources,
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }, { code: 'history-system' }],
        // system search: `_type`, and the parameters every type has (any other that all listed types share works too)
        searchParam: [
          { name: '_type', type: 'token', documentation: 'Comma-separated resource types to search; all types when absent' },
          ...SYSTEM_PARAMS.map(([name, type, id]) => ({ name, type, definition: `http://hl7.org/fhir/SearchParameter/${id}` })),
        ],
      },
    ],
  });
}
