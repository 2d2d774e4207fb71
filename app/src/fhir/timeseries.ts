import type { MedplumClient } from '@medplum/core';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { LOINC, VITAL_CODES } from './vitals.ts';

export interface Point { t: number; average: number; minimum: number; maximum: number; count: number }

/** LOINC code → points, from Vigil's Observation/$timeseries (downsampled in the database). */
export async function loadSeries(medplum: MedplumClient, patientId: string, start: number, end: number, points = 240): Promise<Map<string, Point[]>> {
  const url = medplum.fhirUrl('Observation', '$timeseries');
  url.search = new URLSearchParams({
    patient: patientId,
    coding: VITAL_CODES.join(','),
    period: `${new Date(start).toISOString()}/${new Date(end).toISOString()}`,
    points: String(points),
  }).toString();
  const result = await medplum.get<Parameters>(url, { cache: 'no-cache' });
  const series = new Map<string, Point[]>();
  for (const s of result.parameter ?? []) {
    const code = part(s, 'code')?.valueCoding;
    if (code?.system !== LOINC || !code.code) continue;
    series.set(code.code, (s.part ?? []).filter((p) => p.name === 'point').map((p) => ({
      t: Date.parse(part(p, 'start')?.valueInstant ?? ''),
      average: part(p, 'average')?.valueDecimal ?? NaN,
      minimum: part(p, 'minimum')?.valueDecimal ?? NaN,
      maximum: part(p, 'maximum')?.valueDecimal ?? NaN,
      count: part(p, 'count')?.valueInteger ?? 0,
    })));
  }
  return series;
}

const part = (p: ParametersParameter, name: string): ParametersParameter | undefined => p.part?.find((x) => x.name === name);
