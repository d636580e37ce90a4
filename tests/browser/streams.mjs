// Drives the ELS console's streams of an org (GET /console on the consumer's admin server) in
// Debian's headless Chromium through playwright-core: the org's streams list, adding a second
// stream (generic HTTP, NDJSON batches), the endpoint types' own options (HTTP caps,
// Elasticsearch, Datadog, OAuth2 for every type but HEC), field errors from the API (400 and
// 409 with `field`), saving, its own test event, pause and resume, and removing a stream after
// a confirm. Started by tests/it/console.rs, which passes everything in the environment:
//
//   CONSOLE_URL          http://127.0.0.1:PORT/console
//   ADMIN_TOKEN          the consumer's ELS_ADMIN_TOKEN
//   ORG                  an org whose stream `default` (HEC, to siem-sim) is configured
//   NDJSON_URL           siem-sim's /http/ndjson
//   SIEM_TOKEN           a token siem-sim accepts (`Authorization: Bearer ...`)
//   STREAM               the id of the stream to add (e.g. lake)
//   STREAM_NAME          its name
//   CLASHING_STREAM      an id whose dead-letter slot is STREAM's (the API answers 409)
//   CHROMIUM             optional, default /usr/bin/chromium
//   CONSOLE_SCREENSHOTS_DIR optional: write console-streams.png there
//   FAILURE_SCREENSHOT   optional: where to save the page when a step fails
//
// Every wait is bounded; a watchdog ends the run. Exit 0 when every step passed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = Number(process.env.CONSOLE_TEST_TIMEOUT_MS || 180_000);
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`FAIL: ${name} is not set (this script is started by tests/it/console.rs)`);
    process.exit(2);
  }
  return value;
}

const CONSOLE_URL = need('CONSOLE_URL');
const ADMIN_TOKEN = need('ADMIN_TOKEN');
const ORG = need('ORG');
const NDJSON_URL = need('NDJSON_URL');
const SIEM_TOKEN = need('SIEM_TOKEN');
const STREAM = need('STREAM');
const STREAM_NAME = need('STREAM_NAME');
const CLASHING = need('CLASHING_STREAM');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.CONSOLE_SCREENSHOTS_DIR || '';

const watchdog = setTimeout(() => {
  console.error(`FAIL: the streams console test did not finish within ${TOTAL_TIMEOUT_MS / 1000} s`);
  process.exit(3);
}, TOTAL_TIMEOUT_MS);

let stepNo = 0;
const ok = (what) => console.log(`ok ${++stepNo} - ${what}`);

async function until(page, what, fn, arg, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
  }
}

const text = async (locator) => ((await locator.textContent({ timeout: STEP_TIMEOUT_MS })) || '').trim();

/** The streams table as {id: {name, endpoint, url, enabled, state}}. */
const streamRows = (page) => page.locator('#streams-rows tr').evaluateAll((trs) => Object.fromEntries(trs.map((tr) => {
  const cell = (name) => (tr.querySelector(`[data-test="${name}"]`)?.textContent || '').trim();
  return [tr.dataset.stream, {
    name: cell('name'), endpoint: cell('endpoint'), url: cell('url'), enabled: cell('enabled'),
    state: tr.dataset.state || '', current: tr.getAttribute('aria-current') === 'true',
  }];
})));

const status = (page) => page.evaluate(() => document.getElementById('status').textContent);

async function run(page) {
  // 1. Sign in and open the org: its stream `default` is listed and shown.
  await page.goto(CONSOLE_URL, { waitUntil: 'load' });
  await page.locator('#token').fill(ADMIN_TOKEN);
  await page.locator('#token').press('Enter');
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator('#org-select').selectOption(ORG);
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  await until(page, 'the org\'s streams', () => document.querySelectorAll('#streams-rows tr').length === 1);
  let rows = await streamRows(page);
  assert.deepEqual(Object.keys(rows), ['default']);
  assert.equal(rows.default.endpoint, 'Splunk HEC');
  assert.equal(rows.default.current, true, 'the stream default is the one shown');
  assert.equal(await text(page.locator('#settings-stream')), 'default');
  assert.match(await text(page.locator('#streams-summary')), /^1 of at most 5 streams\./);
  ok(`opened ${ORG}: streams ${JSON.stringify(rows)}`);

  // 2. A bad id is refused before anything is sent, beside the id field.
  await page.getByLabel('New stream id').fill('Not An Id');
  await page.getByRole('button', { name: 'Add stream' }).click();
  await until(page, 'the id error', () => /1-32 characters/.test(document.querySelector('#stream-new-id-field .field-error')?.textContent || ''));
  assert.equal(await page.locator('#stream-new-id').getAttribute('aria-invalid'), 'true');
  ok('an invalid stream id is refused next to the id field');

  // 3. Add the stream: the form opens for it, empty, with its name.
  await page.getByLabel('New stream id').fill(STREAM);
  await page.getByLabel('New stream name (optional)').fill(STREAM_NAME);
  await page.getByLabel('New stream id').press('Enter');
  await until(page, 'the new stream\'s form', (id) => document.getElementById('settings').dataset.loaded === id
    && /^New stream /.test(document.getElementById('settings-note').textContent), STREAM);
  assert.ok(page.url().endsWith(`#org=${ORG}&stream=${STREAM}`), page.url());
  assert.equal(await page.getByLabel('Stream name (optional)', { exact: true }).inputValue(), STREAM_NAME);
  assert.equal(await page.locator('#settings-fields').isDisabled(), false, 'a new stream opens for editing');
  assert.equal(await page.getByLabel('SIEM URL').inputValue(), '');
  ok(`added ${STREAM}: the form opens empty for it, named "${STREAM_NAME}"`);

  // 4. Each endpoint type shows its own options; OAuth2 for every type but HEC.
  const visible = async () => Object.fromEntries(await Promise.all(
    ['hec-field', 'http-field', 'es-field', 'dd-field', 'oauth2-field'].map(async (id) => [id, await page.locator(`#${id}`).isVisible()])));
  assert.deepEqual(await visible(), { 'hec-field': true, 'http-field': false, 'es-field': false, 'dd-field': false, 'oauth2-field': false });
  await page.getByLabel('Endpoint type').selectOption('elasticsearch');
  assert.deepEqual(await visible(), { 'hec-field': false, 'http-field': false, 'es-field': true, 'dd-field': false, 'oauth2-field': true });
  assert.equal(await page.getByLabel('Operation type').inputValue(), 'create');
  await page.getByLabel('Endpoint type').selectOption('datadog');
  assert.deepEqual(await visible(), { 'hec-field': false, 'http-field': false, 'es-field': false, 'dd-field': true, 'oauth2-field': true });
  await page.getByLabel('Endpoint type').selectOption('http');
  assert.deepEqual(await visible(), { 'hec-field': false, 'http-field': true, 'es-field': false, 'dd-field': false, 'oauth2-field': true });
  assert.equal(await page.getByLabel('Most events per request').isDisabled(), true, 'no caps for single');
  assert.equal(await page.getByLabel('Token URL').isDisabled(), true, 'OAuth2 off until asked for');
  await page.getByLabel('Get a bearer token with OAuth2 client credentials').check();
  assert.equal(await page.getByLabel('Token URL').isDisabled(), false);
  assert.equal(await page.getByLabel('Client secret').getAttribute('type'), 'password');
  await page.getByLabel('Get a bearer token with OAuth2 client credentials').uncheck();
  ok('endpoint types: HEC envelope, Elasticsearch (index, op type), Datadog (ddsource, service, tags), HTTP (format, caps); OAuth2 for all but HEC');

  // 5. Fill in an NDJSON stream to siem-sim with a cap out of range: the API's 400 names
  //    `http.max_events`, shown beside that input.
  await page.getByLabel('SIEM URL').fill(NDJSON_URL);
  await page.getByLabel('Allow plain http (local demos and tests only)').check();
  await page.getByLabel('Batch format').selectOption('ndjson');
  await page.getByLabel('Most events per request').fill('0');
  await page.getByLabel('Most bytes per request').fill('65536');
  if ((await page.locator('#auth-rows > .row').count()) === 0) await page.getByRole('button', { name: 'Add authorization header' }).click();
  await page.getByLabel('Authorization header 1 name').fill('Authorization');
  await page.getByLabel('Authorization header 1 value').fill(`Bearer ${SIEM_TOKEN}`);
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the field error', () => document.querySelector('.field-error[data-field="http.max_events"]'));
  assert.match(await text(page.locator('#http-max-events-field .field-error')), /1-10000/);
  assert.equal(await page.locator('#http-max-events').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'http-max-events');
  ok(`400 from the API shown beside the cap: "${await text(page.locator('#http-max-events-field .field-error'))}"`);

  // 6. Fix it and save: the list shows both streams.
  await page.getByLabel('Most events per request').fill('100');
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the save', (id) => (document.getElementById('status').textContent || '').startsWith(`Saved the settings of `)
    && document.getElementById('status').textContent.includes(`stream ${id}`), STREAM);
  await until(page, 'both streams in the list', () => document.querySelectorAll('#streams-rows tr').length === 2);
  rows = await streamRows(page);
  assert.deepEqual(Object.keys(rows), ['default', STREAM]);
  assert.deepEqual(rows[STREAM], { name: STREAM_NAME, endpoint: 'HTTP (NDJSON)', url: NDJSON_URL, enabled: 'yes', state: rows[STREAM].state, current: true });
  assert.equal(rows.default.endpoint, 'Splunk HEC');
  assert.equal(await page.locator('#auth-rows .masked').count(), 1, 'the saved secret shows as a mask');
  assert.ok(!(await page.content()).includes(SIEM_TOKEN), 'the stored secret is nowhere in the page');
  assert.equal(await page.locator('#stream-new-id').inputValue(), '', 'the add form is cleared');
  ok(`saved ${STREAM}: list ${JSON.stringify(rows)}`);

  // 7. Its own test event: siem-sim's /http/ndjson answers 200.
  await page.getByRole('button', { name: `Test stream ${STREAM}` }).click();
  await until(page, 'the test answer', (id) => document.querySelector('#test-result [data-test="verdict"]')
    && document.getElementById('test-result').dataset.stream === id, STREAM);
  assert.equal(await page.locator('#test-result [data-test="verdict"]').getAttribute('data-tone'), 'ok');
  assert.equal(await text(page.locator('#test-result [data-test="status"]')), '200 OK');
  assert.match(await text(page.locator('#test-result [data-test="latency"]')), /^\d+ ms$/);
  const body = await text(page.locator('#test-result [data-test="body"]'));
  assert.ok(body.length > 0, 'a body excerpt is shown');
  assert.equal(await page.locator('#test-result [data-test="hec"]').count(), 0, 'no HEC code from a generic endpoint');
  assert.match(await status(page), new RegExp(`^Test event sent through stream ${STREAM}: `));
  ok(`test event through ${STREAM}: ${await text(page.locator('#test-result [data-test="status"]'))}, ${await text(page.locator('#test-result [data-test="latency"]'))}, body ${body.slice(0, 60)}`);

  // 8. Pause and resume this stream only; the stream default stays as it was.
  await until(page, 'the stream\'s status', () => document.getElementById('stream-state').dataset.state === 'active', undefined, 20_000);
  assert.match(await text(page.locator('#stream-title')), new RegExp(`stream ${STREAM}$`));
  await page.getByRole('button', { name: 'Pause' }).click();
  await until(page, 'paused by user', () => document.getElementById('stream-state').dataset.state === 'paused_by_user');
  assert.match(await text(page.locator('#stream-result')), new RegExp(`^Paused ${ORG} stream ${STREAM}:`));
  await until(page, 'the list to show it paused', (id) => document.querySelector(`#streams-rows tr[data-stream="${id}"]`)?.dataset.state === 'paused_by_user', STREAM);
  rows = await streamRows(page);
  assert.notEqual(rows.default.state, 'paused_by_user', 'the stream default is not paused');
  await page.getByRole('button', { name: 'Resume' }).click();
  await until(page, 'active again', () => document.getElementById('stream-state').dataset.state === 'active');
  assert.match(await text(page.locator('#stream-result')), new RegExp(`^Resumed ${ORG} stream ${STREAM}: the stream is active\\.$`));
  await until(page, 'the list to show it active', (id) => document.querySelector(`#streams-rows tr[data-stream="${id}"]`)?.dataset.state === 'active', STREAM);
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true });
    const path = join(SHOTS, 'console-streams.png');
    await page.screenshot({ path, fullPage: true, animations: 'disabled' });
    console.log(`screenshot: ${path}`);
  }
  ok(`paused and resumed ${STREAM}; default stayed ${rows.default.state}`);

  // 9. An id sharing STREAM's dead-letter slot: the API's 409 names `stream`, shown beside the id.
  await page.getByLabel('New stream id').fill(CLASHING);
  await page.getByRole('button', { name: 'Add stream' }).click();
  await until(page, 'the clashing stream\'s form', (id) => document.getElementById('settings').dataset.loaded === id
    && !document.getElementById('settings-fields').disabled, CLASHING);
  await page.getByLabel('SIEM URL').fill(NDJSON_URL);
  await page.getByLabel('Endpoint type').selectOption('http');
  await page.getByLabel('Allow plain http (local demos and tests only)').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the 409 beside the id', () => document.querySelector('#stream-new-id-field .field-error[data-field="stream"]'));
  assert.match(await text(page.locator('#stream-new-id-field .field-error')), /dead-letter slot/);
  assert.equal(await status(page), 'Not saved.');
  ok(`409 from the API shown beside the new stream id: "${await text(page.locator('#stream-new-id-field .field-error'))}"`);

  // 10. Another id saves; removing it asks first: dismissed keeps it, accepted removes it.
  await page.getByLabel('New stream id').fill('scratch');
  await page.getByRole('button', { name: 'Add stream' }).click();
  await until(page, 'the scratch stream\'s form', () => document.getElementById('settings').dataset.loaded === 'scratch'
    && !document.getElementById('settings-fields').disabled);
  await page.getByLabel('SIEM URL').fill(NDJSON_URL);
  await page.getByLabel('Endpoint type').selectOption('http');
  await page.getByLabel('Allow plain http (local demos and tests only)').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'three streams', () => document.querySelectorAll('#streams-rows tr').length === 3);
  const dialogs = [];
  let accept = false;
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    return accept ? d.accept() : d.dismiss();
  });
  await page.getByRole('button', { name: 'Remove stream scratch' }).click();
  await until(page, 'nothing removed', () => document.getElementById('status').textContent === 'Nothing removed.');
  assert.equal(await page.locator('#streams-rows tr').count(), 3);
  accept = true;
  await page.getByRole('button', { name: 'Remove stream scratch' }).click();
  await until(page, 'the removal', () => /^Removed stream scratch of /.test(document.getElementById('status').textContent));
  await until(page, 'two streams again', () => document.querySelectorAll('#streams-rows tr').length === 2);
  assert.equal(dialogs.length, 2);
  assert.match(dialogs[0], new RegExp(`^Remove stream scratch of ${ORG}\\? Its events stop streaming to `));
  await until(page, 'the stream default back in the form', () => document.getElementById('settings').dataset.loaded === 'default');
  assert.equal(await text(page.locator('#settings-stream')), 'default', 'the removed stream was shown: back to default');
  rows = await streamRows(page);
  assert.deepEqual(Object.keys(rows), ['default', STREAM]);
  ok(`removing asks first ("${dialogs[0]}"); dismissed kept it, accepted removed it`);

  // 11. Back to the added stream from the list: its saved settings come back.
  await page.getByRole('button', { name: `Open stream ${STREAM}` }).click();
  await until(page, 'the stream\'s settings', ([id, url]) => document.getElementById('settings').dataset.loaded === id
    && document.getElementById('url').value === url, [STREAM, NDJSON_URL]);
  assert.equal(await page.getByLabel('Endpoint type').inputValue(), 'http');
  assert.equal(await page.getByLabel('Batch format').inputValue(), 'ndjson');
  assert.equal(await page.getByLabel('Most events per request').inputValue(), '100');
  assert.equal(await page.getByLabel('Most bytes per request').inputValue(), '65536');
  assert.equal(await page.getByLabel('Stream name (optional)', { exact: true }).inputValue(), STREAM_NAME);
  ok(`reopened ${STREAM}: endpoint http, NDJSON, caps 100 events / 65536 bytes`);

  // 12. The stream-health overview lists one row per stream.
  await page.getByRole('link', { name: 'Stream health' }).click();
  await until(page, 'both streams in the overview', (org) => [...document.querySelectorAll('#overview-rows tr')]
    .filter((tr) => tr.dataset.org === org).length === 2, ORG);
  const overview = await page.locator('#overview-rows tr').evaluateAll((trs, org) => trs
    .filter((tr) => tr.dataset.org === org).map((tr) => tr.dataset.stream), ORG);
  assert.deepEqual(overview, ['default', STREAM]);
  ok(`the overview lists ${ORG}'s streams: ${overview.join(', ')}`);
}

async function main() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'els-streams-chromium-'));
  let context;
  let page;
  const pageErrors = [];
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS,
      viewport: { width: 1200, height: 900 }, deviceScaleFactor: 1, timeout: 60_000,
    });
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      return url.hostname === '127.0.0.1' || url.hostname === 'localhost' ? route.continue() : route.abort();
    });
    page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await run(page);
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
    ok('no page errors');
    console.log(`${stepNo} passed, 0 failed`);
  } catch (e) {
    console.error(`FAIL after step ${stepNo}: ${e && e.message ? e.message : e}`);
    if (pageErrors.length) console.error(`page errors: ${pageErrors.join(' | ')}`);
    const where = process.env.FAILURE_SCREENSHOT;
    if (page && where) {
      await page.screenshot({ path: where, fullPage: true, timeout: 10_000 }).catch(() => {});
      console.error(`page at the failure: ${where}`);
    }
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
    clearTimeout(watchdog);
  }
}

await main();
