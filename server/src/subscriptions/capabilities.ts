import type { CapabilityStatement } from '@medplum/fhirtypes';
import { BACKPORT, BACKPORT_PROFILE } from './parse.ts';
import { websocketUrl } from './routes.ts';
import { getTopics } from './topics.ts';

/**
 * What the CapabilityStatement says about subscriptions: the websocket URL (R4 extension), the
 * topics (Backport IG `capabilitystatement-subscriptiontopic-canonical`), the backport profile
 * and the subscription operations.
 */
export function withSubscriptions(baseUrl: string, statement: CapabilityStatement): CapabilityStatement {
  const rest = statement.rest?.[0];
  if (!rest) return statement;
  rest.extension = [...(rest.extension ?? []), { url: 'http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket', valueUri: websocketUrl(baseUrl) }];
  const subscription = rest.resource?.find((r) => r.type === 'Subscription');
  if (subscription) {
    subscription.extension = [...getTopics().keys()].map((url) => ({ url: `${BACKPORT}capabilitystatement-subscriptiontopic-canonical`, valueCanonical: url }));
    subscription.supportedProfile = [BACKPORT_PROFILE];
    subscription.operation = [
      { name: 'status', definition: 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status' },
      { name: 'events', definition: 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events' },
      { name: 'resend', definition: 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-resend' },
      { name: 'get-ws-binding-token', definition: 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-get-ws-binding-token' },
    ];
  }
  return statement;
}
