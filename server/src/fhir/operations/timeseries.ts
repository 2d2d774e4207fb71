import type { Request, Response } from 'express';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { Restriction } from '../../store/search/execute.ts';
import type { FhirContext } from '../context.ts';
import { badRequest } from '../outcome.ts';
import { sendJson } from '../respond.ts';
import { checkKnown, operationParams, positiveInt, single } from './parameters.ts';
import { fromCanonical, parseValueSelection, statsSql } from './stats.ts';

/**
 * Observation/$timeseries (Vigil): one subject's values per code, downsampled into at most `points`
 * equal time buckets of a round width (1 s … 1 week) over the period, each with count, average, minimum and maximum. It is what a
 * chart needs: thirty days of 1-Hz readings become a few hundred points computed in SQL. Codes, units
 * and panels (blood pressure gives its component codes) behave exactly as in `$stats`.
 */
const KNOWN = new Set(['subject', 'patient', 'code', 'system', 'coding', 'duration', 'period', 'points']);
const DEFAULT_POINTS = 300;
const MAX_POINTS = 5000;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
/** Bucket widths a reader can follow on a time axis. */
const WIDTHS = [1, 2, 5, 10, 15, 30].map((s) => s * SECOND)
  .concat([1, 2, 5, 10, 15, 30].map((m) => m * MINUTE), [1, 2, 3, 6, 12, 24, 48, 168].map((h) => h * HOUR));

interface Bucket { grp: string; unit: string; canonical: boolean; bucket: string; n: number; average: number; minimum: number; maximum: number }

export const timeseries = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const params = operationParams(req);
  checkKnown(params, KNOWN);
  const selection = parseValueSelection(params, ctx.baseUrl, '$timeseries');
  const { start, end } = selection.period;
  if (!start || !end) throw badRequest('$timeseries needs a bounded period: period=start/end or duration (hours)', 'period');
  const pointsText = single(params, 'points');
  const points = pointsText === undefined ? DEFAULT_POINTS : Math.min(positiveInt(pointsText, 'points'), MAX_POINTS);
  const width = bucketWidth(Date.parse(end) - Date.parse(start), points);
  // buckets aligned to multiples of their width: the same reading stays in the same bucket as a live chart's window moves
  const from = Math.floor(Date.parse(start) / width) * width;

  const { sql, params: values } = statsSql(selection, ctx.baseUrl, res.locals.restriction as Restriction | undefined);
  const origin = values.add(from);
  const size = values.add(width);
  const rows = await ctx.repo.db.query<Bucket>(
    `${sql}, bucketed AS (
       SELECT u.*, floor((extract(epoch FROM at) * 1000 - ${origin}::float8) / ${size}::float8)::bigint AS b FROM used u
     )
     SELECT grp, min(ref_unit) AS unit, bool_or(canonical) AS canonical, b::text AS bucket,
       count(*)::int AS n, avg(x)::float8 AS average, min(x)::float8 AS minimum, max(x)::float8 AS maximum
     FROM bucketed GROUP BY grp, b ORDER BY grp, b`,
    values.values,
  );

  const series = new Map<string, Bucket[]>();
  for (const row of rows) series.set(row.grp, [...(series.get(row.grp) ?? []), row]);
  const order = (k: string): number => (selection.codes.includes(k) ? selection.codes.indexOf(k) : selection.codes.length);
  const parameter: ParametersParameter[] = [...series.keys()].sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1)).map((key) => {
    const buckets = series.get(key) as Bucket[];
    const { unit, canonical } = buckets[0];
    const value = (v: number, n: number): number => Number((canonical ? fromCanonical('location', v, unit, n) : v).toPrecision(12));
    return {
      name: 'series',
      part: [
        { name: 'code', valueCoding: coding(key) },
        { name: 'unit', valueCoding: coding(unit) },
        { name: 'interval', valueQuantity: { value: width / 1000, unit: 's', system: 'http://unitsofmeasure.org', code: 's' } },
        ...buckets.map((b) => ({
          name: 'point',
          part: [
            { name: 'start', valueInstant: new Date(from + Number(b.bucket) * width).toISOString() },
            { name: 'count', valueInteger: b.n },
            { name: 'average', valueDecimal: value(b.average, b.n) },
            { name: 'minimum', valueDecimal: value(b.minimum, b.n) },
            { name: 'maximum', valueDecimal: value(b.maximum, b.n) },
          ],
        })),
      ],
    };
  });
  const result: Parameters = { resourceType: 'Parameters', parameter };
  sendJson(req, res, 200, result);
};

/** `system|code` (a bare `|unit` has no system). */
function coding(key: string): { system?: string; code: string } {
  const bar = key.indexOf('|');
  const system = key.slice(0, bar);
  return system ? { system, code: key.slice(bar + 1) } : { code: key.slice(bar + 1) };
}

/** The narrowest round width that covers the span in at most `points` buckets. */
function bucketWidth(span: number, points: number): number {
  const needed = span / points;
  return WIDTHS.find((w) => w >= needed) ?? Math.ceil(needed / WIDTHS[WIDTHS.length - 1]) * WIDTHS[WIDTHS.length - 1];
}
