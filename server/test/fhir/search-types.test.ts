import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const SCT = 'http://snomed.info/sct';

const obs = (id: string, extra: Record<string, unknown>) => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, ...extra });
const coded = (code: string) => ({ coding: [{ system: LOINC, code }] });
const ucum = (value: number, code: string) => ({ value, unit: code, system: UCUM, code });

/** Observations whose effective[x] exercises every shape of a FHIR date. */
const dated = [
  obs('d1', { effectiveDateTime: '2024-03-15T10:30:00Z' }),
  obs('d2', { effectiveDateTime: '2024-03-15' }),
  obs('d3', { effectiveDateTime: '2024-03' }),
  obs('d4', { effectivePeriod: { start: '2024-03-14T22:00:00Z', end: '2024-03-15T02:00:00Z' } }),
  obs('d5', { effectivePeriod: { start: '2024-03-20T00:00:00Z' } }),
  obs('d6', { effectivePeriod: { end: '2024-01-10T00:00:00Z' } }),
  obs('d7', { effectiveInstant: '2023-12-31T23:59:59.500Z' }),
  obs('d8', { effectiveDateTime: '2024-03-15T23:30:00-05:00' }),
  obs('d9', {}),
  obs('d10', { effectiveDateTime: '2010-06-01' }),
].map((o) => ({ ...o, category: [{ coding: [{ code: 'dated' }] }] }));

/** Observations with several dates: a Timing's events are searched one by one, not as their span. */
const timed = [
  obs('tm1', { effectiveTiming: { event: ['2024-03-15T09:00:00Z', '2024-03-22T09:00:00Z'] } }),
  obs('tm2', { effectiveDateTime: '2024-03-18' }),
  obs('tm3', { effectiveTiming: { event: ['2024-03-16T09:00:00Z', '2024-03-16T09:00:00Z'] } }),
].map((o) => ({ ...o, category: [{ coding: [{ code: 'timed' }] }] }));
const quantities = [
  obs('q1', { code: coded('8480-6'), valueQuantity: ucum(100.4, 'mm[Hg]') }),
  obs('q2', { code: coded('8480-6'), valueQuantity: ucum(100.6, 'mm[Hg]') }),
  obs('q3', { code: coded('29463-7'), valueQuantity: ucum(75000, 'g') }),
  obs('q4', { code: coded('29463-7'), valueQuantity: ucum(80, 'kg') }),
  obs('q5', { code: coded('8310-5'), valueQuantity: ucum(98.6, '[degF]') }),
  obs('q6', { code: coded('8310-5'), valueQuantity: ucum(37, 'Cel') }),
  obs('q7', { code: coded('8867-4'), valueQuantity: { value: 100, unit: 'bpm' } }),
  obs('q8', { code: coded('8867-4'), valueQuantity: { value: 100, system: 'http://acme.org/units', code: 'widgets' } }),
  obs('q9', { code: coded('8867-4'), valueString: 'unreadable' }),
  obs('q10', { code: coded('8310-5'), valueQuantity: ucum(45, 'Cel') }),
].map((o) => ({ ...o, category: [{ coding: [{ code: 'quantity' }] }] }));

const component = (code: string, value: number) => ({ code: coded(code), valueQuantity: ucum(value, 'mm[Hg]') });
const composites = [
  obs('bp1', { code: coded('85354-9'), component: [component('8480-6', 150), component('8462-4', 95)] }),
  obs('bp2', { code: coded('85354-9'), component: [component('8480-6', 120), component('8462-4', 145)] }),
  obs('c1', { code: coded('94500-6'), valueCodeableConcept: { coding: [{ system: SCT, code: '10828004' }] } }),
  obs('c2', { code: coded('94500-6'), valueCodeableConcept: { coding: [{ system: SCT, code: '260385009' }] } }),
];

const risk = (id: string, prediction: object[]) => ({ resourceType: 'RiskAssessment', id, status: 'final', subject: { reference: 'Patient/x' }, prediction });
const percent = (value: number) => ({ value, system: UCUM, code: '%' });
const risks = [
  risk('r1', [{ probabilityDecimal: 0.22 }]),
  risk('r2', [{ probabilityDecimal: 0.3 }, { probabilityDecimal: 0.8 }]),
  risk('r3', [{ probabilityRange: { low: percent(10), high: percent(20) } }]),
  risk('r4', [{ probabilityDecimal: 0.345 }]),
  risk('r5', [{ probabilityDecimal: 0.35 }]),
];

const encounters = [
  { id: 'e1', period: { start: '2024-01-01T08:00:00Z', end: '2024-01-03T12:00:00Z' } },
  { id: 'e2', period: { start: '2024-01-02' } },
  { id: 'e3' },
].map((e) => ({ resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, ...e }));

const born = [['b1', '1970-05-05'], ['b2', '1970-05'], ['b3', '1971']].map(([id, birthDate]) => ({ resourceType: 'Patient', id, birthDate }));

for (const driver of DRIVERS) {
  describe(`FHIR search: date, number, quantity, composite (${driver})`, () => {
    const s = useServer(driver);
    let between = '';

    async function ids(query: string): Promise<string[]> {
      const res = await request('GET', `${s.fhir}/${query}`);
      assert.equal(res.status, 200, `${query}: ${JSON.stringify(res.body)}`);
      return res.body.entry.map((e: any) => e.resource.id).sort();
    }
    async function expect(query: string, expected: string[]): Promise<void> {
      assert.deepEqual(await ids(query), [...expected].sort(), query);
    }
    const put = async (r: { resourceType: string; id?: string }): Promise<void> => {
      const res = await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r);
      assert.equal(res.status, 201, JSON.stringify(res.body));
    };

    before(async () => {
      for (const r of [...dated, ...timed, ...quantities, ...composites, ...risks, ...encounters, ...born]) await put(r);
      await put({ resourceType: 'Basic', id: 'early', code: { text: 'x' } } as any);
      await new Promise((r) => setTimeout(r, 20));
      between = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 20));
      await put({ resourceType: 'Basic', id: 'late', code: { text: 'x' } } as any);
    });

    const d = (query: string) => `Observation?category=dated&${query}`;

    it('date eq with year, month, day and second precision', async () => {
      await expect(d('date=2024-03-15'), ['d1', 'd2']);
      await expect(d('date=eq2024-03-15'), ['d1', 'd2']);
      await expect(d('date=2024-03'), ['d1', 'd2', 'd3', 'd4', 'd8']);
      await expect(d('date=2024'), ['d1', 'd2', 'd3', 'd4', 'd8']);
      await expect(d('date=2023'), ['d7']);
      await expect(d('date=2024-03-15T10:30:00Z'), ['d1']);
      await expect(d('date=2024-03-16'), ['d8']);
      await expect(d(`date=${encodeURIComponent('2024-03-15T23:30:00-05:00')}`), ['d8']);
    });

    it('date ne, gt, lt, ge, le, sa, eb against instants, dateTimes and Periods', async () => {
      await expect(d('date=ne2024-03-15'), ['d3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd10']);
      await expect(d('date=gt2024-03-15'), ['d3', 'd5', 'd8']);
      await expect(d('date=lt2024-03-15'), ['d10', 'd3', 'd4', 'd6', 'd7']);
      await expect(d('date=ge2024-03-15'), ['d1', 'd2', 'd3', 'd5', 'd8']);
      await expect(d('date=le2024-03-15'), ['d1', 'd10', 'd2', 'd3', 'd4', 'd6', 'd7']);
      await expect(d('date=sa2024-03-15'), ['d5', 'd8']);
      await expect(d('date=eb2024-03-15'), ['d10', 'd6', 'd7']);
      await expect(d('date=ge2024-03-15T10:30'), ['d1', 'd2', 'd3', 'd5', 'd8']);
      await expect(d('date=gt2030'), ['d5']);
      await expect(d('date=lt1900'), ['d6']);
      await expect(d('date=ge2024-01-01&date=lt2024-03-15'), ['d3', 'd4', 'd6']);
      await expect(d('date:missing=true'), ['d9']);
    });

    it('date with a time zone, encoded or with its + sent unencoded', async () => {
      await expect(d(`date=gt${encodeURIComponent('2024-03-15T12:00:00+02:00')}`), ['d1', 'd2', 'd3', 'd5', 'd8']);
      await expect(d('date=gt2024-03-15T12:00:00+02:00'), ['d1', 'd2', 'd3', 'd5', 'd8']);
    });

    it('date ap is approximately equal', async () => {
      const near = await ids(d('date=ap2024-03-15'));
      for (const id of ['d1', 'd2', 'd3', 'd4', 'd8']) assert.ok(near.includes(id), `${id} in ${near}`);
      for (const id of ['d9', 'd10']) assert.ok(!near.includes(id), `${id} not in ${near}`);
      const far = await ids(d('date=ap2010-06-01'));
      assert.ok(far.includes('d10') && !far.includes('d1') && !far.includes('d5'), String(far));
    });

    it('date against several dates: each is matched on its own', async () => {
      const tm = (query: string) => `Observation?category=timed&${query}`;
      await expect(tm('date=2024-03-15'), ['tm1']);
      await expect(tm('date=2024-03-22'), ['tm1']);
      await expect(tm('date=2024-03-16'), ['tm3']);
      await expect(tm('date=2024-03-18'), ['tm2']);
      await expect(tm('date=ne2024-03-16'), ['tm1', 'tm2']);
      await expect(tm('date=sa2024-03-20'), ['tm1']);
      await expect(tm('date=eb2024-03-16'), ['tm1']);
      await expect(tm('date=ge2024-03-20'), ['tm1']);
      await expect(tm('date=le2024-03-15'), ['tm1']);
      await expect(tm('date=gt2024-03-23'), []);
      await expect(tm('date=lt2024-03-15'), []);
      await expect(tm('date=ap2024-03-22'), ['tm1', 'tm2', 'tm3']);
      await expect(tm('date=2024-03-15,2024-03-18'), ['tm1', 'tm2']);
    });

    it('date against open-ended Periods', async () => {
      await expect('Encounter?date=ge2024-01-02', ['e1', 'e2']);
      await expect('Encounter?date=lt2024-01-02', ['e1']);
      await expect('Encounter?date=sa2024-01-01', ['e2']);
      await expect('Encounter?date=eb2024-01-05', ['e1']);
      await expect('Encounter?date=gt2030', ['e2']);
      await expect('Encounter?date=le2024', ['e1']);
      await expect('Encounter?date=2024-01', ['e1']);
      await expect('Encounter?date:missing=true', ['e3']);
    });

    it('date against partial dates of the date type', async () => {
      await expect('Patient?birthdate=1970', ['b1', 'b2']);
      await expect('Patient?birthdate=1970-05', ['b1', 'b2']);
      await expect('Patient?birthdate=1970-05-05', ['b1']);
      await expect('Patient?birthdate=ge1970-05-05', ['b1', 'b2', 'b3']);
      await expect('Patient?birthdate=gt1970-05-05', ['b2', 'b3']);
      await expect('Patient?birthdate=lt1970-05-05', ['b2']);
      await expect('Patient?birthdate=le1970-05', ['b1', 'b2']);
      await expect('Patient?birthdate=sa1970-05', ['b3']);
      await expect('Patient?birthdate=eb1971', ['b1', 'b2']);
      await expect('Patient?birthdate=ne1970', ['b3']);
    });

    it('_lastUpdated', async () => {
      await expect(`Basic?_id=early,late&_lastUpdated=gt${between}`, ['late']);
      await expect(`Basic?_id=early,late&_lastUpdated=lt${between}`, ['early']);
      await expect(`Basic?_id=early,late&_lastUpdated=ge${between.slice(0, 10)}`, ['early', 'late']);
      await expect(`Basic?_id=early,late&_lastUpdated=${between.slice(0, 4)}`, ['early', 'late']);
      await expect(`Basic?_id=early,late&_lastUpdated=lt2000`, []);
    });

    it('number: prefixes and implicit precision', async () => {
      await expect('RiskAssessment?probability=0.3', ['r2', 'r4']);
      await expect('RiskAssessment?probability=0.30', ['r2']);
      await expect('RiskAssessment?probability=0.345', ['r4']);
      await expect('RiskAssessment?probability=0.35', ['r4', 'r5']);
      await expect('RiskAssessment?probability=0.4', ['r5']);
      await expect('RiskAssessment?probability=8e-1', ['r2']);
      await expect('RiskAssessment?probability=gt0.5', ['r2']);
      await expect('RiskAssessment?probability=lt0.25', ['r1']);
      await expect('RiskAssessment?probability=ge0.345', ['r2', 'r4', 'r5']);
      await expect('RiskAssessment?probability=le0.22', ['r1']);
      await expect('RiskAssessment?probability=ne0.3', ['r1', 'r2', 'r5']);
      await expect('RiskAssessment?probability=ne0.345', ['r1', 'r2', 'r5']);
      await expect('RiskAssessment?probability=sa0.3', ['r2', 'r4', 'r5']);
      await expect('RiskAssessment?probability=eb0.3', ['r1']);
      await expect('RiskAssessment?probability=ap0.8', ['r2']);
      await expect('RiskAssessment?probability=0.22,0.8', ['r1', 'r2']);
      await expect('RiskAssessment?probability:missing=true', ['r3']);
    });

    const q = (query: string) => `Observation?category=quantity&${query}`;

    it('quantity: implicit precision, value|system|code and value||code', async () => {
      await expect(q('value-quantity=100'), ['q1', 'q7', 'q8']);
      await expect(q('value-quantity=100.4'), ['q1']);
      await expect(q(`value-quantity=100|${UCUM}|mm[Hg]`), ['q1']);
      await expect(q('value-quantity=100||mm[Hg]'), ['q1']);
      await expect(q('value-quantity=100||bpm'), ['q7']);
      await expect(q('value-quantity=100|http://acme.org/units|widgets'), ['q8']);
      await expect(q('value-quantity=100||widgets'), ['q8']);
      await expect(q('value-quantity=gt100.5'), ['q2', 'q3']);
      await expect(q('value-quantity=ne100'), ['q10', 'q2', 'q3', 'q4', 'q5', 'q6']);
      await expect(q('value-quantity=ap100'), ['q1', 'q2', 'q5', 'q7', 'q8']);
      await expect(q(`value-quantity=ne80|${UCUM}|kg`), ['q3']);
      await expect(q('value-quantity:missing=true'), ['q9']);
    });

    it('quantity: UCUM units are compared after conversion', async () => {
      await expect(q(`value-quantity=75|${UCUM}|kg`), ['q3']);
      await expect(q(`value-quantity=gt76|${UCUM}|kg`), ['q4']);
      await expect(q(`value-quantity=lt80000|${UCUM}|g`), ['q3']);
      await expect(q(`value-quantity=80000|${UCUM}|g`), ['q4']);
      await expect(q(`value-quantity=37|${UCUM}|Cel`), ['q5', 'q6']);
      await expect(q(`value-quantity=98.6|${UCUM}|[degF]`), ['q5', 'q6']);
      await expect(q(`value-quantity=le37|${UCUM}|Cel`), ['q5', 'q6']);
      await expect(q(`value-quantity=gt37.5|${UCUM}|Cel`), ['q10']);
      await expect(q(`value-quantity=ap37|${UCUM}|Cel`), ['q5', 'q6']);
      await expect(q(`value-quantity=ap80|${UCUM}|kg`), ['q3', 'q4']);
      await expect(q(`value-quantity=13.39|${UCUM}|kPa`), ['q1']);
    });

    it('composite: component-code-value-quantity matches within one component', async () => {
      await expect(`Observation?component-code-value-quantity=${LOINC}|8480-6$gt140`, ['bp1']);
      await expect(`Observation?component-code-value-quantity=${LOINC}|8462-4$gt140`, ['bp2']);
      await expect('Observation?component-code-value-quantity=8480-6$lt130', ['bp2']);
      await expect(`Observation?component-code-value-quantity=${LOINC}|8480-6$150|${UCUM}|mm[Hg]`, ['bp1']);
      await expect(`Observation?component-code-value-quantity=${LOINC}|8480-6$gt140,${LOINC}|8462-4$gt140`, ['bp1', 'bp2']);
    });

    it('composite: code-value-quantity and code-value-concept', async () => {
      await expect(`Observation?code-value-quantity=${LOINC}|29463-7$gt76|${UCUM}|kg`, ['q4']);
      await expect(`Observation?code-value-quantity=${LOINC}|29463-7$gt100`, ['q3']);
      await expect(`Observation?code-value-quantity=${LOINC}|8310-5$37|${UCUM}|Cel`, ['q5', 'q6']);
      await expect(`Observation?code-value-quantity=${LOINC}|8480-6$150`, []);
      await expect(`Observation?code-value-concept=${LOINC}|94500-6$${SCT}|10828004`, ['c1']);
      await expect('Observation?code-value-concept=94500-6$260385009', ['c2']);
      await expect(`Observation?code-value-concept=${LOINC}|94500-6$${SCT}|`, ['c1', 'c2']);
    });
  });
}
