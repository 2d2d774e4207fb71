import type { Observation, Patient, Resource } from '@medplum/fhirtypes';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';
import type { AlertRule, Condition } from './rule.ts';

/**
 * Rule conditions run on the `fhirpath` engine (HL7's JavaScript implementation), with the
 * triggering Observation as context and `%resource`, and `%previous`, `%recent`, `%patient`.
 */
export interface RuleContext {
  trigger: Observation;
  /** The patient's reading of the same code before the trigger, if any. */
  previous?: Observation;
  /** The patient's readings of the same code in the recent window, the trigger included, newest first. */
  recent: Observation[];
  patient?: Patient;
}

export interface ConditionOutcome extends Condition {
  /** True when the expression gave exactly true (every item true, at least one). */
  met: boolean;
  result?: unknown[];
  error?: string;
}

export interface RuleOutcome {
  fires: boolean;
  conditions: ConditionOutcome[];
}

type Compiled = (resource: unknown, env: Record<string, unknown>) => unknown[];

/** Compiled expressions by text; rules are few and re-run on every reading. */
const COMPILED = new Map<string, { run?: Compiled; error?: string }>();
const MAX_COMPILED = 1_000;

const EMPTY: RuleContext = { trigger: { resourceType: 'Observation', status: 'final', code: {} }, recent: [] };

/**
 * Compiles a condition, and runs it once on an empty Observation: FHIRPath parses unknown functions
 * and variables, and reports them only when they are reached.
 */
export function compileCondition(expression: string): { run?: Compiled; error?: string } {
  let compiled = COMPILED.get(expression);
  if (!compiled) {
    try {
      const run = fhirpath.compile(expression, r4) as Compiled;
      run(structuredClone(EMPTY.trigger), environment(EMPTY));
      compiled = { run };
    } catch (err) {
      compiled = { error: (err as Error).message.split('\n')[0] };
    }
    if (COMPILED.size >= MAX_COMPILED) COMPILED.delete(COMPILED.keys().next().value as string);
    COMPILED.set(expression, compiled);
  }
  return compiled;
}

/** Evaluates every condition of the rule; it fires when all are met. */
export function evaluateRule(rule: AlertRule, context: RuleContext): RuleOutcome {
  const own = structuredClone(context);
  const env = environment(own);
  const conditions = rule.conditions.map((condition): ConditionOutcome => {
    const { run, error } = compileCondition(condition.expression);
    if (!run) return { ...condition, met: false, error };
    try {
      const result = run(own.trigger, env);
      return { ...condition, met: result.length > 0 && result.every((v) => v === true), result };
    } catch (err) {
      return { ...condition, met: false, error: (err as Error).message.split('\n')[0] };
    }
  });
  return { fires: conditions.length > 0 && conditions.every((c) => c.met), conditions };
}

function environment(context: RuleContext): Record<string, unknown> {
  return {
    resource: context.trigger,
    previous: context.previous ? typed([context.previous]) : [],
    recent: typed(context.recent),
    patient: context.patient ? typed([context.patient]) : [],
  };
}

/**
 * Resources as typed FHIRPath nodes. fhirpath 4.11 fails on an array of bare resources passed as a
 * variable; the same resources taken out of a Bundle by the engine itself carry their types.
 */
function typed(resources: readonly Resource[]): unknown[] {
  if (resources.length === 0) return [];
  const bundle = { resourceType: 'Bundle', type: 'collection', entry: resources.map((resource) => ({ resource })) };
  return fhirpath.evaluate(bundle, 'entry.resource', {}, r4) as unknown[];
}
