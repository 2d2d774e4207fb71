import type { CodeableConcept, Coding } from '@medplum/fhirtypes';
import { defined } from './json.ts';
import { readCollection, sameName, type TemplateReader } from './read.ts';
import { MAX_SLOTS } from './sampled-data.ts';

/** Compiles a MedTech FHIR destination mapping (CollectionFhir of CodeValueFhir templates). */

export type ValueTemplate =
  | { readonly valueType: 'Quantity'; readonly valueName: string; readonly unit?: string; readonly code?: string; readonly system?: string }
  | {
      readonly valueType: 'SampledData';
      readonly valueName: string;
      /** Milliseconds between slots. */
      readonly defaultPeriod: number;
      readonly unit?: string;
      readonly code?: string;
      readonly system?: string;
    }
  | { readonly valueType: 'String'; readonly valueName: string }
  | { readonly valueType: 'CodeableConcept'; readonly valueName: string; readonly concept: CodeableConcept };

type ValueType = ValueTemplate['valueType'];
const VALUE_TYPES: readonly ValueType[] = ['Quantity', 'SampledData', 'String', 'CodeableConcept'];

/** Minutes per Observation: 0 one per reading, 60 hourly, 1440 daily (UTC), -1 one per correlation id. */
export type PeriodInterval = 0 | 60 | 1440 | -1;
const PERIOD_INTERVALS: readonly number[] = [0, 60, 1440, -1];

export interface ComponentTemplate {
  readonly code: CodeableConcept;
  readonly value: ValueTemplate;
}

export interface FhirTemplate {
  readonly path: string;
  readonly typeName: string;
  readonly code: CodeableConcept;
  readonly category: readonly CodeableConcept[];
  readonly periodInterval: PeriodInterval;
  readonly value?: ValueTemplate;
  readonly components: readonly ComponentTemplate[];
}

export function compileFhirMapping(value: unknown): FhirTemplate[] {
  return readCollection('fhirMapping', value, 'CollectionFhir').map(({ type, reader }) => {
    if (!sameName(type, 'CodeValueFhir')) reader.fail('templateType', `unknown template type ${JSON.stringify(type)}; expected CodeValueFhir`);
    return compileTemplate(reader);
  });
}

function compileTemplate(r: TemplateReader): FhirTemplate {
  const typeName = r.string('typeName');
  const periodInterval = r.has('periodInterval') ? r.number('periodInterval') : 0;
  if (!PERIOD_INTERVALS.includes(periodInterval)) r.fail('periodInterval', 'must be 0, 60, 1440 or -1');
  const value = r.has('value') ? valueTemplate(r.child('value'), periodInterval) : undefined;
  const components = r.has('components')
    ? r.array('components').map((entry, i) => {
        const c = r.child(`components[${i}]`, entry);
        return { code: concept(c, 'codes'), value: valueTemplate(c.child('value'), periodInterval) };
      })
    : [];
  if (!value && components.length === 0) r.fail('value', 'a value or at least one component is required');
  return {
    path: r.template,
    typeName,
    code: concept(r, 'codes', typeName),
    category: r.has('category') ? r.array('category').map((entry, i) => category(r.child(`category[${i}]`, entry))) : [],
    periodInterval: periodInterval as PeriodInterval,
    value,
    components,
  };
}

function valueTemplate(v: TemplateReader, periodInterval: number): ValueTemplate {
  const valueName = v.string('valueName');
  const raw = v.string('valueType');
  const valueType = VALUE_TYPES.find((t) => sameName(t, raw));
  if (!valueType) return v.fail('valueType', `unknown valueType ${JSON.stringify(raw)}; expected one of ${VALUE_TYPES.join(', ')}`);
  const units = defined({ unit: v.optionalString('unit'), code: v.optionalString('code'), system: v.optionalString('system') });
  switch (valueType) {
    case 'Quantity':
      return { valueType, valueName, ...units };
    case 'SampledData': {
      const defaultPeriod = v.number('defaultPeriod');
      if (defaultPeriod <= 0) v.fail('defaultPeriod', 'must be a positive number of milliseconds');
      if (periodInterval > 0 && (periodInterval * 60_000) / defaultPeriod > MAX_SLOTS) {
        v.fail('defaultPeriod', `a ${periodInterval}-minute Observation would hold more than ${MAX_SLOTS} samples`);
      }
      return { valueType, valueName, defaultPeriod, ...units };
    }
    case 'String':
      return { valueType, valueName };
    case 'CodeableConcept':
      return { valueType, valueName, concept: category(v) };
  }
}

function codings(r: TemplateReader, field: string): Coding[] {
  return r.array(field).map((entry, i) => {
    const c = r.child(`${field}[${i}]`, entry);
    return defined({ system: c.optionalString('system'), code: c.string('code'), display: c.optionalString('display') });
  });
}

/** Observation.code and component codes: at least one coding, so every reading is coded. */
function concept(r: TemplateReader, field: string, fallbackText?: string): CodeableConcept {
  if (!r.has(field)) r.fail(field, 'at least one code is required');
  const coding = codings(r, field);
  if (coding.length === 0) r.fail(field, 'at least one code is required');
  const text = coding[0]!.display ?? fallbackText;
  return text ? { coding, text } : { coding };
}

/** MedTech's `{ text, codes }` shape, used for categories and CodeableConcept values. */
function category(r: TemplateReader): CodeableConcept {
  const coding = r.has('codes') ? codings(r, 'codes') : [];
  const text = r.optionalString('text');
  if (coding.length === 0 && !text) r.fail('codes', 'a text or at least one code is required');
  return { ...(coding.length > 0 ? { coding } : {}), ...(text ? { text } : {}) };
}
