import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { isRuleProfile, ruleIssues } from '../../../bots/rules/rule.ts';
import { checkRequiredBindings } from '../bindings.ts';
import { FhirError, unprocessable } from '../fhir/outcome.ts';
import { validateAgainstProfiles } from '../profiles.ts';
import { passesBaseStructure } from './base-structure.ts';

/**
 * What every write checks, and what $validate reports: the R4 structure (@medplum/core), required
 * bindings, the Vigil profiles the resource claims (or that the caller names), and the FHIRPath
 * conditions of a custom alert rule (bots/rules), which must compile: a 400 names the one that does not.
 */
export function validationIssues(resource: Resource, profiles: readonly string[] = resource.meta?.profile ?? []): { base: OperationOutcomeIssue[]; profile: OperationOutcomeIssue[] } {
  const base = passesBaseStructure(resource) ? [] : structureErrors(resource);
  base.push(...checkRequiredBindings(resource));
  if (resource.resourceType === 'PlanDefinition' && profiles.some(isRuleProfile)) base.push(...ruleIssues(resource));
  return { base, profile: validateAgainstProfiles(resource, profiles) };
}

/** The R4 structure errors of @medplum/core's validator (its warnings are not reasons to refuse). */
export function structureErrors(resource: Resource): OperationOutcomeIssue[] {
  try {
    return validateResource(resource).filter((i) => i.severity === 'error' || i.severity === 'fatal');
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) throw err;
    return err.outcome.issue ?? [];
  }
}

/** Throws 400 for a resource that is not valid R4, 422 for one that breaks a profile it claims. */
export function validate(resource: Resource): void {
  const { base, profile } = validationIssues(resource);
  if (base.length) throw new FhirError(400, base);
  if (profile.length) throw unprocessable(profile);
}
