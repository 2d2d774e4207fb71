import { compileExpression, type Expression, type Language } from './expression.ts';
import { isPlainObject } from './json.ts';
import { readCollection, sameName, type TemplateReader } from './read.ts';

/** Compiles a MedTech device mapping (CollectionContent) into extraction rules. */

const KINDS = ['JsonPathContent', 'CalculatedContent', 'IotJsonPathContent', 'IotCentralJsonPathContent'] as const;
export type TemplateKind = (typeof KINDS)[number];

/** How one normalized field is found: the first expression that yields a value wins. */
export interface Rule {
  /** The template field named in rejections, e.g. "timestampExpression". */
  readonly field: string;
  readonly expressions: readonly Expression[];
  /** IoT templates read device id and time from the message envelope when the matched token lacks them. */
  readonly fallbackToMessage: boolean;
}

export interface ValueRule extends Rule {
  readonly valueName: string;
  readonly required: boolean;
}

export interface DeviceTemplate {
  readonly path: string;
  readonly kind: TemplateKind;
  readonly typeName: string;
  readonly typeMatch: Expression;
  readonly deviceId: Rule;
  readonly timestamp: Rule;
  readonly endTimestamp?: Rule;
  readonly patientId?: Rule;
  readonly encounterId?: Rule;
  readonly correlationId?: Rule;
  readonly values: readonly ValueRule[];
}

const IOT_HUB_DEVICE_ID = ["$.SystemProperties['iothub-connection-device-id']", "$.systemProperties['iothub-connection-device-id']"];
// The device's own creation time comes first (when the reading was taken), then the hub's enqueue time.
const IOT_HUB_TIMESTAMP = [
  "$.Properties['iothub-creation-time-utc']",
  "$.properties['iothub-creation-time-utc']",
  "$.SystemProperties['iothub-enqueuedtime']",
  "$.systemProperties['iothub-enqueuedtime']",
];

export function compileDeviceMapping(value: unknown): DeviceTemplate[] {
  return readCollection('deviceMapping', value, 'CollectionContent').map(({ type, reader }) => {
    const kind = KINDS.find((k) => sameName(k, type));
    if (!kind) return reader.fail('templateType', `unknown template type ${JSON.stringify(type)}; expected one of ${KINDS.join(', ')}`);
    return compileTemplate(kind, reader);
  });
}

function compileTemplate(kind: TemplateKind, r: TemplateReader): DeviceTemplate {
  const calculated = kind === 'CalculatedContent';
  const defaultLanguage = calculated && r.has('defaultExpressionLanguage') ? language(r, 'defaultExpressionLanguage', r.data.defaultExpressionLanguage) : 'JsonPath';
  const expression = (reader: TemplateReader, name: string): Expression => {
    const raw = reader.data[name];
    if (raw === undefined || raw === null) reader.fail(name, 'is required');
    let source: unknown = raw;
    let lang: Language = defaultLanguage;
    if (isPlainObject(raw)) {
      source = raw.value;
      if (raw.language !== undefined) lang = language(reader, name, raw.language);
    }
    if (typeof source !== 'string' || source.trim() === '') reader.fail(name, 'must be an expression string or { "value", "language" }');
    if (lang === 'JmesPath' && !calculated) reader.fail(name, `${kind} supports JSONPath only`);
    try {
      return compileExpression(source, lang);
    } catch (error) {
      return reader.fail(name, (error as Error).message);
    }
  };
  const rule = (name: string): Rule => ({ field: r.field(name), expressions: [expression(r, name)], fallbackToMessage: false });
  const optionalRule = (name: string): Rule | undefined => (r.has(name) ? rule(name) : undefined);
  const envelope = (name: string, sources: string[]): Rule => ({
    field: r.field(name),
    expressions: sources.map((s) => compileExpression(s, 'JsonPath')),
    fallbackToMessage: true,
  });

  const typeName = r.string('typeName');
  const typeMatch = expression(r, 'typeMatchExpression');
  const iotHub = kind === 'IotJsonPathContent';
  const iotCentral = kind === 'IotCentralJsonPathContent';
  const deviceId = iotHub ? envelope('deviceIdExpression', IOT_HUB_DEVICE_ID) : iotCentral ? envelope('deviceIdExpression', ['$.deviceId']) : rule('deviceIdExpression');
  const timestamp = iotHub ? envelope('timestampExpression', IOT_HUB_TIMESTAMP) : iotCentral ? envelope('timestampExpression', ['$.enqueuedTime']) : rule('timestampExpression');

  const valueNames = new Set<string>();
  const values = r.array('values').map((entry, i): ValueRule => {
    const v = r.child(`values[${i}]`, entry);
    const valueName = v.string('valueName');
    if (valueNames.has(valueName)) v.fail('valueName', `duplicate valueName ${JSON.stringify(valueName)}`);
    valueNames.add(valueName);
    const valueExpression = expression(v, 'valueExpression');
    return { field: v.field('valueExpression'), expressions: [valueExpression], fallbackToMessage: false, valueName, required: v.flag('required') };
  });

  return {
    path: r.template,
    kind,
    typeName,
    typeMatch,
    deviceId,
    timestamp,
    endTimestamp: optionalRule('endTimestampExpression'),
    patientId: optionalRule('patientIdExpression'),
    encounterId: optionalRule('encounterIdExpression'),
    correlationId: optionalRule('correlationIdExpression'),
    values,
  };
}

function language(r: TemplateReader, field: string, value: unknown): Language {
  if (typeof value === 'string' && sameName(value, 'JsonPath')) return 'JsonPath';
  if (typeof value === 'string' && sameName(value, 'JmesPath')) return 'JmesPath';
  return r.fail(field, 'language must be JsonPath or JmesPath');
}
