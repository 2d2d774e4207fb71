import type { DeviceTemplate, Rule } from './device-templates.ts';
import { defined, describe, isPlainObject, nestingExceeds } from './json.ts';
import { parseDecimal, parseTimestamp, scalarText } from './scalars.ts';
import type { IdentityResolution, Measurement, MeasurementProperty, NormalizeOptions, NormalizeResult, Rejection } from './types.ts';

/**
 * Runs every device template over one message. Each token a template's typeMatchExpression
 * selects becomes one measurement or one rejection with a precise reason; nothing a message
 * contains can throw out of here or affect another message.
 */

const MAX_DEPTH = 32;
const MAX_FUTURE_MS = 5 * 60_000;
const MAX_ID_LENGTH = 256;

/** What the FHIR mapping needs of each type's values. */
export interface Binding {
  /** Values the FHIR template uses; a measurement must carry at least one of them. */
  readonly used: ReadonlySet<string>;
  /** Values bound to Quantity or SampledData, which must be numbers. */
  readonly numeric: ReadonlySet<string>;
}

export interface NormalizeSettings {
  readonly templates: readonly DeviceTemplate[];
  readonly bindings: ReadonlyMap<string, Binding>;
  readonly identityResolution: IdentityResolution;
}

class Reject extends Error {
  readonly field?: string;

  constructor(reason: string, field?: string) {
    super(reason);
    this.field = field;
  }
}

export function normalizeMessage(settings: NormalizeSettings, message: unknown, options: NormalizeOptions = {}): NormalizeResult {
  if (!isPlainObject(message)) return { measurements: [], rejections: [{ reason: `message must be a JSON object, got ${describe(message)}` }] };
  if (nestingExceeds(message, MAX_DEPTH)) return { measurements: [], rejections: [{ reason: `message is nested deeper than ${MAX_DEPTH} levels` }] };
  const now = (options.now ?? new Date()).getTime();
  const measurements: Measurement[] = [];
  const rejections: Rejection[] = [];
  for (const template of settings.templates) {
    const where = { template: template.path, typeName: template.typeName };
    let tokens: unknown[];
    try {
      tokens = template.typeMatch.selectAll(message);
    } catch (error) {
      rejections.push({ ...where, field: 'typeMatchExpression', reason: (error as Error).message });
      continue;
    }
    for (const token of tokens) {
      try {
        measurements.push(extract(settings, template, message, token, now));
      } catch (error) {
        const field = error instanceof Reject && error.field ? { field: error.field } : {};
        rejections.push({ ...where, ...field, reason: (error as Error).message });
      }
    }
  }
  if (measurements.length === 0 && rejections.length === 0) rejections.push({ reason: 'no template matched the message' });
  return { measurements, rejections };
}

function extract(settings: NormalizeSettings, template: DeviceTemplate, message: Record<string, unknown>, token: unknown, now: number): Measurement {
  // CalculatedContent sees the whole message plus the token; the JSONPath templates see the token.
  const target = template.kind === 'CalculatedContent' ? { ...message, matchedToken: token } : token;
  const read = (rule: Rule): unknown => {
    for (const data of rule.fallbackToMessage ? [target, message] : [target]) {
      for (const expression of rule.expressions) {
        let value: unknown;
        try {
          value = expression.selectOne(data);
        } catch (error) {
          throw new Reject((error as Error).message, rule.field);
        }
        if (value !== undefined && value !== null) return value;
      }
    }
    return undefined;
  };
  const identifier = (rule: Rule | undefined, label: string, required: boolean): string | undefined => {
    if (!rule) return undefined;
    const value = read(rule);
    if (value === undefined) {
      if (required) throw new Reject(`no ${label} found`, rule.field);
      return undefined;
    }
    const text = typeof value === 'string' ? value.trim() : typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;
    if (!text) throw new Reject(`${label} must be a non-empty string or a number, got ${describe(value)}`, rule.field);
    if (text.length > MAX_ID_LENGTH) throw new Reject(`${label} is longer than ${MAX_ID_LENGTH} characters`, rule.field);
    return text;
  };
  const time = (rule: Rule, label: string, value: unknown): Date => {
    if (value === undefined) throw new Reject(`no ${label} found`, rule.field);
    const parsed = parseTimestamp(value, label);
    if (!parsed.ok) throw new Reject(parsed.reason, rule.field);
    if (parsed.value.getTime() > now + MAX_FUTURE_MS) {
      throw new Reject(`${label} ${parsed.value.toISOString()} is more than ${MAX_FUTURE_MS / 60_000} minutes in the future`, rule.field);
    }
    return parsed.value;
  };

  const deviceId = identifier(template.deviceId, 'device id', true)!;
  const occurrenceTime = time(template.timestamp, 'timestamp', read(template.timestamp));
  const end = template.endTimestamp && read(template.endTimestamp);
  const endTime = end === undefined ? undefined : time(template.endTimestamp!, 'end timestamp', end);
  if (endTime && endTime < occurrenceTime) throw new Reject('end timestamp is before the timestamp', template.endTimestamp!.field);
  // compileMapping guarantees a patientIdExpression on every template when identities are created.
  const patientId = identifier(template.patientId, 'patient id', settings.identityResolution === 'Create');
  const encounterId = identifier(template.encounterId, 'encounter id', false);
  const correlationId = identifier(template.correlationId, 'correlation id', true);

  const binding = settings.bindings.get(template.typeName);
  const properties: MeasurementProperty[] = [];
  for (const rule of template.values) {
    const value = read(rule);
    if (value === undefined) {
      if (rule.required) throw new Reject(`required value ${JSON.stringify(rule.valueName)} is missing`, rule.field);
      continue;
    }
    const text = scalarText(value);
    if (!text.ok) throw new Reject(`value ${JSON.stringify(rule.valueName)}: ${text.reason}`, rule.field);
    let stored = text.value;
    if (binding?.numeric.has(rule.valueName)) {
      const n = parseDecimal(stored);
      if (n === undefined) throw new Reject(`value ${JSON.stringify(rule.valueName)} is ${describe(value)}, not a number`, rule.field);
      stored = String(n);
    }
    properties.push({ name: rule.valueName, value: stored });
  }
  if (binding && !properties.some((p) => binding.used.has(p.name))) {
    throw new Reject(`none of the values the FHIR mapping uses (${[...binding.used].join(', ')}) is present`, 'values');
  }

  return defined({ type: template.typeName, deviceId, patientId, encounterId, correlationId, occurrenceTime, endTime, properties });
}
