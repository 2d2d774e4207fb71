import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Bundle, Flag, Observation } from '@medplum/fhirtypes';
import type { Browser, Page } from 'playwright-core';
import { buildAppIfStale } from '../../scripts/build-app.ts';
import { request, useServer } from '../../server/test/support.ts';
import { accessibilityViolations, launchBrowser, signIn, watchErrors } from './browser.ts';

const SCREENSHOTS = new URL('./screenshots/', import.meta.url).pathname;
const CLINICIAN = 'clinician@demo.vigil';
const PATIENT = 'patient@demo.vigil';
const PASSWORD = 'vigil-demo';
const LOINC = 'http://loinc.org';

// before any server starts: a fresh clone has no app/dist yet
buildAppIfStale();

/** Network refusals the browser logs itself when a test probes what it may not see. */
const refused = (message: string): boolean => /status of 40[134]/.test(message);

describe('Vigil app in a real browser (demo data, PostgreSQL)', () => {
  const s = useServer('postgres', { VIGIL_DEMO: 'on' });
  let browser: Browser;

  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  const screenshot = (page: Page, name: string) => page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });

  it('serves the app at / with its client routes, and leaves API paths to the API', async () => {
    for (const path of ['/', '/patients/x', '/alerts']) {
      const res = await fetch(`${s.base}${path}`, { headers: { accept: 'text/html' } });
      assert.equal(res.status, 200, path);
      assert.match(await res.text(), /<div id="root">/);
    }
    const api = await fetch(`${s.base}/fhir/R4/Nothing/1`, { headers: { accept: 'text/html' } });
    assert.equal(api.status, 401);
  });

  it('clinician: panel, a new abnormal reading raises an alert live, acknowledge it, open the chart', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    const errors = watchErrors(page);
    await signIn(page, s.base, CLINICIAN, PASSWORD);

    await page.getByRole('heading', { name: 'Patients' }).waitFor();
    const tile = page.getByRole('article', { name: /Pat Demo/ });
    await tile.waitFor({ timeout: 30_000 });
    await page.locator('[data-live="live"]').waitFor({ timeout: 15_000 });
    await screenshot(page, 'clinician-panel');
    assert.deepEqual(await accessibilityViolations(page), [], 'panel accessibility');

    // an SpO2 of 84 % for the demo patient, posted through the API like a device gateway would
    const at = new Date().toISOString();
    const reading: Observation = {
      resourceType: 'Observation', status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
      code: { coding: [{ system: LOINC, code: '2708-6', display: 'Oxygen saturation in Arterial blood' }, { system: LOINC, code: '59408-5' }] },
      subject: { reference: 'Patient/demo-patient' }, effectiveDateTime: at,
      valueQuantity: { value: 84, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
    };
    const posted = await request('POST', `${s.fhir}/Observation`, reading);
    assert.equal(posted.status, 201, JSON.stringify(posted.body));
    // the thresholds bot runs on the worker queue; generous under a loaded CI machine
    await tile.getByText(/Low oxygen saturation/).waitFor({ timeout: 60_000 });

    await page.getByRole('link', { name: 'Alerts' }).click();
    const card = page.getByRole('article', { name: /alert: Low oxygen saturation/ }).filter({ hasText: 'Pat Demo' }).first();
    await card.waitFor();
    await screenshot(page, 'clinician-alerts');
    assert.deepEqual(await accessibilityViolations(page), [], 'alerts accessibility');
    const flagId = await card.getAttribute('data-flag');
    await card.getByRole('button', { name: 'Acknowledge' }).click();
    await page.getByText('Alert acknowledged').waitFor();
    const flag = await request<Flag>('GET', `${s.fhir}/Flag/${flagId}`);
    assert.equal(flag.body.status, 'inactive');
    assert.ok(flag.body.period?.end, 'the Flag has ended');

    await page.goto(`${s.base}/patients/demo-patient`);
    await page.getByRole('heading', { name: 'Pat Demo' }).waitFor();
    await page.getByRole('figure', { name: /SpO₂/ }).waitFor({ timeout: 15_000 });
    await page.getByText('7 days', { exact: true }).click();
    await page.getByRole('figure', { name: /Pulse/ }).waitFor();
    await screenshot(page, 'clinician-chart');
    assert.deepEqual(await accessibilityViolations(page), [], 'chart accessibility');

    await page.getByRole('link', { name: 'Monitoring plan' }).click();
    await page.getByRole('heading', { name: /Monitoring plan/ }).waitFor();
    await screenshot(page, 'clinician-plan');
    assert.deepEqual(await accessibilityViolations(page), [], 'plan accessibility');
    assert.deepEqual(errors, []);

    // a custom rule: a bad condition is refused inline, the fixed one is tried on the demo patient, then saved as a draft
    await page.getByRole('link', { name: 'Rules' }).click();
    await page.getByRole('heading', { name: 'Alert rules' }).waitFor();
    await page.getByRole('button', { name: 'New rule' }).click();
    const editor = page.locator('section[aria-labelledby="rule-editor-heading"]');
    await editor.getByRole('textbox', { name: /^Name/ }).fill('Oxygen below 90');
    await editor.getByRole('textbox', { name: /^Alert text/ }).fill('SpO₂ below 90 %');
    await editor.getByRole('checkbox', { name: 'SpO₂' }).check();
    const condition = editor.getByRole('textbox', { name: /^Condition/ });
    await condition.fill('value.value <');
    await editor.getByLabel('Patient to test on').selectOption({ label: 'Pat Demo' });
    await editor.getByRole('button', { name: 'Test on patient' }).click();
    await editor.getByText(/^Invalid FHIRPath "value\.value <"/).waitFor();
    assert.equal(await condition.getAttribute('aria-invalid'), 'true');
    const refusals = errors.splice(0).filter((e) => !/status of 400/.test(e));
    assert.deepEqual(refusals, [], 'only the refusal of the bad condition');
    await condition.fill('value.value < 90');
    await editor.getByRole('button', { name: 'Test on patient' }).click();
    await editor.getByText(/^Would fire on \d+ of the \d+ newest readings/).waitFor();
    await editor.getByRole('row', { name: /84 % Fires met: \[true\]/ }).waitFor();
    assert.notEqual(await condition.getAttribute('aria-invalid'), 'true');
    await editor.getByRole('button', { name: 'Activate' }).waitFor({ state: 'visible' });
    assert.equal(await editor.getByRole('button', { name: 'Activate' }).isEnabled(), true, 'tested: it may be activated');
    await editor.getByRole('button', { name: 'Save as draft' }).click();
    await page.getByText('Rule saved as draft').waitFor();
    const row = page.getByRole('row', { name: /Oxygen below 90/ });
    await row.getByText('draft').waitFor();
    // saving kept the test: the draft may be activated, then retired
    await editor.getByRole('button', { name: 'Activate' }).click();
    await row.getByText('active').waitFor();
    await editor.getByRole('button', { name: 'Retire' }).click();
    await row.getByText('retired').waitFor();
    await screenshot(page, 'clinician-rules');
    assert.deepEqual(await accessibilityViolations(page), [], 'rules accessibility');
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('patient: own readings in plain language, and another patient\'s chart is refused', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
    const page = await context.newPage();
    const errors = watchErrors(page);
    await signIn(page, s.base, PATIENT, PASSWORD);
    await page.getByRole('heading', { name: 'Hello, Pat' }).waitFor();
    await page.getByRole('heading', { name: 'Your latest readings' }).waitFor();
    await page.getByText(/your usual range/).first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'patient-portal');
    assert.deepEqual(await accessibilityViolations(page), [], 'portal accessibility');

    const others = await request<Bundle>('GET', `${s.fhir}/Patient?_count=20`);
    const other = others.body.entry?.map((e) => e.resource?.id).find((id) => id && id !== 'demo-patient');
    assert.ok(other, 'the demo has other patients');
    await page.goto(`${s.base}/patients/${other}`);
    await page.getByText('This record is not available to you.').waitFor();
    await screenshot(page, 'patient-refused');
    assert.deepEqual(errors.filter((e) => !refused(e)), []);
    await context.close();
  });
});
