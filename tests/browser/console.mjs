// Drives the ELS settings console (GET /console on the consumer's admin server) in Debian's
// headless Chromium through playwright-core, as an admin would: sign in, fill every field,
// save, reload, send test events (good token, wrong token), see field errors, replay dead
// letters; then the stream-health overview (states, sorting, filters), a paused org's status
// panel (reason, since), fixing its token, Pause and Resume; then as an org admin, who sees
// and manages only its org. Started by tests/it/console.rs, which sets up broker, siem-sim, consumer and the
// dead letters first and passes everything in the environment:
//
//   CONSOLE_URL          http://127.0.0.1:PORT/console
//   ADMIN_TOKEN          the consumer's ELS_ADMIN_TOKEN
//   ORG                  org id to configure (it has EXPECT_DEAD_LETTERS dead letters)
//   SIEM_URL             siem-sim's HEC URL
//   SIEM_TOKEN           a HEC token siem-sim accepts
//   WRONG_TOKEN          one it refuses
//   EXPECT_DEAD_LETTERS  how many dead letters ORG has at the start
//   PAUSED_ORG           an org whose settings carry a wrong HEC token: its stream is paused
//                        (403, HEC code 4) and holds EXPECT_HELD events
//   PAUSED_SINCE         when it was paused, as GET /v1/orgs/{org}/status says
//   ORG_ADMIN_TOKEN      an org_admin token for ORG only (issued by the super admin)
//   OTHER_ORG            an org with settings that token must not reach
//   ORG_VIEWER_TOKEN     an org_viewer token for ORG only
//   CHROMIUM             optional, default /usr/bin/chromium
//   CONSOLE_SCREENSHOTS_DIR optional: write console-settings.png, console-test-event.png,
//                        console-dead-letters.png, console-stream-health.png and
//                        console-stream-status.png there
//   FAILURE_SCREENSHOT   optional: where to save the page when a step fails
//
// Every wait is bounded; a watchdog ends the run. Exit 0 when every step passed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = 15_000;
const REPLAY_TIMEOUT_MS = 90_000;
const TOTAL_TIMEOUT_MS = Number(process.env.CONSOLE_TEST_TIMEOUT_MS || 240_000);
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
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
const SIEM_URL = need('SIEM_URL');
const SIEM_TOKEN = need('SIEM_TOKEN');
const WRONG_TOKEN = need('WRONG_TOKEN');
const EXPECT_DEAD = Number(need('EXPECT_DEAD_LETTERS'));
const PAUSED_ORG = need('PAUSED_ORG');
const PAUSED_SINCE = need('PAUSED_SINCE');
const EXPECT_HELD = Number(need('EXPECT_HELD'));
const ORG_ADMIN_TOKEN = need('ORG_ADMIN_TOKEN');
const OTHER_ORG = need('OTHER_ORG');
const ORG_VIEWER_TOKEN = need('ORG_VIEWER_TOKEN');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.CONSOLE_SCREENSHOTS_DIR || '';
const TEMPLATE = '{"source": "els-console", "data": "${event}"}';

// A hung browser or page must not hang the suite: a (referenced) watchdog ends the process.
const watchdog = setTimeout(() => {
  console.error(`FAIL: the console test did not finish within ${TOTAL_TIMEOUT_MS / 1000} s`);
  process.exit(3);
}, TOTAL_TIMEOUT_MS);

let stepNo = 0;
const ok = (what) => console.log(`ok ${++stepNo} - ${what}`);

/** Wait for a condition evaluated in the page, with a message naming it. */
async function until(page, what, fn, arg, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
  }
}

const text = async (locator) => ((await locator.textContent({ timeout: STEP_TIMEOUT_MS })) || '').trim();

async function shot(page, name, locator) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, name);
  if (locator) await locator.screenshot({ path, animations: 'disabled' });
  else await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  console.log(`screenshot: ${path}`);
}

async function run(page) {
  const row = (container, i) => page.locator(`#${container} > .row`).nth(i);
  const part = (container, i, name) => row(container, i).locator(`[data-part="${name}"]`);

  // 1. The page loads, offline, and asks for the token.
  await page.goto(CONSOLE_URL, { waitUntil: 'load' });
  assert.equal(await text(page.locator('h1')), 'Execution log streaming');
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'token');
  ok('console served at /console; sign-in form focused');

  // 2. A wrong admin token is refused beside the token field.
  await page.locator('#token').fill('not-the-admin-token-at-all');
  await page.keyboard.press('Enter');
  await until(page, 'the refused-token error', () => /refused/.test(document.querySelector('#token-field .field-error')?.textContent || ''));
  assert.equal(await page.locator('#app').isHidden(), true);
  ok('a wrong admin token is refused next to the token field');

  // 3. Sign in with the keyboard only.
  await page.locator('#token').fill(ADMIN_TOKEN);
  await page.locator('#token').press('Enter');
  await page.locator('#app').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('els.console.token')), ADMIN_TOKEN);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.ok(!page.url().includes(ADMIN_TOKEN), 'the token is never in the URL');
  ok('signed in with the keyboard; token in sessionStorage only, not in the URL');

  // 4. Type a new org id (it streams through the default settings, with dead letters).
  await page.locator('#org-new').fill(ORG);
  await page.locator('#org-new').press('Enter');
  await until(page, 'the org to open', (org) => document.getElementById('org-name').textContent === org, ORG);
  // The note comes with the org's settings, which load after its name is shown.
  await until(page, 'the settings note', () => /no settings of its own/.test(document.getElementById('settings-note').textContent));
  assert.equal(await page.locator('#settings-fields').isDisabled(), false, 'a new org opens for editing');
  await until(page, 'the dead-letter count', (n) => document.getElementById('dlq-count').textContent === String(n), EXPECT_DEAD);
  ok(`opened ${ORG} (no settings of its own yet, ${EXPECT_DEAD} dead letters)`);

  // Keyboard and screen-reader basics: every control has a name, every action is a <button>.
  const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((e) => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
    .map((e) => e.id || e.outerHTML.slice(0, 60)));
  assert.deepEqual(unlabeled, [], 'controls without a label');
  const fakeButtons = await page.evaluate(() => document.querySelectorAll('[onclick], [role="button"]:not(button), a:not([href])').length);
  assert.equal(fakeButtons, 0, 'clickable non-buttons');
  ok('every input has a label; every action is a <button>');

  // 5. Fill every field.
  const enabled = page.locator('#enabled');
  await enabled.focus();
  await page.keyboard.press('Space');
  assert.equal(await enabled.isChecked(), false);
  await page.keyboard.press('Space');
  assert.equal(await enabled.isChecked(), true);
  await page.getByLabel('SIEM URL').fill(SIEM_URL);
  await page.getByLabel('Endpoint type').selectOption('hec');
  await page.getByLabel('Allow plain http (local demos and tests only)').check();
  await page.locator('#ev-all').uncheck();
  await page.getByLabel('Canceled').uncheck();
  await page.getByLabel('Throttled').uncheck();
  await page.getByLabel('Paused', { exact: true }).uncheck();
  await page.getByLabel('Rate-limited by a third party').uncheck();
  if ((await page.locator('#auth-rows > .row').count()) === 0) await page.getByRole('button', { name: 'Add authorization header' }).click();
  await part('auth-rows', 0, 'name').fill('Authorization');
  await part('auth-rows', 0, 'value').fill(`Splunk ${SIEM_TOKEN}`);
  assert.equal(await part('auth-rows', 0, 'value').getAttribute('type'), 'password');
  await page.getByRole('button', { name: 'Add custom header' }).click();
  await page.getByLabel('Custom header 1 name').fill('X-Team');
  await page.getByLabel('Custom header 1 value').fill('secops');
  await page.getByRole('button', { name: 'Add custom header' }).click();
  await page.getByLabel('Custom header 2 name').fill('X-Env');
  await page.getByLabel('Custom header 2 value').fill('console');
  await page.getByRole('button', { name: 'Add custom field' }).click();
  await page.getByLabel('Custom field 1 key').fill('okta_org');
  await page.getByLabel('Custom field 1 value').fill('${org_id}');
  await page.getByLabel('Use default event body').uncheck();
  await page.getByLabel('Custom event body').fill(TEMPLATE);
  await page.getByLabel('All flows except those listed').check();
  await page.getByLabel('Flow id').fill('flow-noisy');
  await page.getByLabel('Flow id').press('Enter');
  await page.getByLabel('Flow id').fill('flow-debug');
  await page.getByRole('button', { name: 'Add flow' }).click();
  await page.getByRole('button', { name: 'Remove flow flow-debug' }).click();
  assert.deepEqual(await page.locator('#flow-list li').evaluateAll((lis) => lis.map((li) => li.dataset.flow)), ['flow-noisy']);
  await page.getByLabel('Limit events sent to the SIEM').check();
  await page.getByLabel('Events', { exact: true }).fill('600');
  await page.getByLabel('Per', { exact: true }).selectOption('minute');
  await page.getByLabel('Burst (optional)').fill('100');
  await page.getByLabel('Over the limit').selectOption('delay');
  await page.getByLabel('source', { exact: true }).fill('els-console');
  await page.getByLabel('sourcetype', { exact: true }).fill('els:execution');
  await page.getByLabel('index (optional)').fill('main');
  await page.getByLabel('indexer acknowledgement').selectOption('false');
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the save', () => /^Saved the settings/.test(document.getElementById('status').textContent));
  assert.equal(await page.locator('#edit').isVisible(), true);
  ok('filled every field (toggle, URL, endpoint, http, events, auth header, 2 custom headers, custom field, body, flows, limit, HEC) and saved');

  // 6. Reload: the saved values come back, the auth value only as a mask.
  await page.reload({ waitUntil: 'load' });
  await until(page, 'the org after reload', (org) => document.getElementById('org-name').textContent === org
    && document.getElementById('url').value !== '', ORG);
  const form = await page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const rows = (id) => [...$(id).children].map((r) => [...r.querySelectorAll('input')].map((i) => i.value));
    return {
      enabled: $('enabled').checked,
      url: $('url').value,
      endpoint: $('endpoint').value,
      allowHttp: $('allow-http').checked,
      all: $('ev-all').checked,
      events: ['FLOW_START', 'FLOW_COMPLETE', 'FLOW_FAILED', 'FLOW_CANCELED', 'FLOW_THROTTLED', 'FLOW_PAUSED',
        'FLOW_THIRD_PARTY_RATE_LIMITED'].filter((t) => $(`ev-${t}`).checked),
      auth: rows('auth-rows'),
      masked: [...document.querySelectorAll('#auth-rows .masked')].map((m) => m.textContent),
      headers: rows('custom-header-rows'),
      fields: rows('custom-field-rows'),
      defaultBody: $('default-body').checked,
      template: $('body-template').value,
      flowMode: document.querySelector('input[name="flow-mode"]:checked').value,
      flows: [...document.querySelectorAll('#flow-list li')].map((li) => li.dataset.flow),
      limit: [$('limit-on').checked, $('limit-rate').value, $('limit-per').value, $('limit-burst').value, $('limit-policy').value],
      hec: [$('hec-source').value, $('hec-sourcetype').value, $('hec-index').value, $('hec-ack').value],
      viewOnly: $('settings-fields').disabled,
      picker: [...$('org-select').options].map((o) => o.value),
    };
  });
  assert.deepEqual(form, {
    enabled: true,
    url: SIEM_URL,
    endpoint: 'hec',
    allowHttp: true,
    all: false,
    events: ['FLOW_START', 'FLOW_COMPLETE', 'FLOW_FAILED'],
    auth: [['Authorization', '']],
    masked: ['********'],
    headers: [['X-Team', 'secops'], ['X-Env', 'console']],
    fields: [['okta_org', '${org_id}']],
    defaultBody: false,
    template: TEMPLATE,
    flowMode: 'exclude',
    flows: ['flow-noisy'],
    limit: [true, '600', 'minute', '100', 'delay'],
    hec: ['els-console', 'els:execution', 'main', 'false'],
    viewOnly: true,
    picker: form.picker,
  });
  assert.ok(form.picker.includes(ORG), `the org picker lists ${ORG}: ${form.picker}`);
  assert.ok(!(await page.content()).includes(SIEM_TOKEN), 'the stored secret is nowhere in the page');
  ok('after a reload every value is back; the Authorization value shows as ******** with an empty password input');

  await page.getByRole('button', { name: 'Edit' }).click();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'enabled');
  await shot(page, 'console-settings.png');
  await page.getByRole('button', { name: 'Cancel' }).click();

  // 7. Send test event: siem-sim answers 200, HEC code 0.
  const toggle = page.getByRole('button', { name: 'Send test event' });
  await toggle.click();
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'send-test');
  await page.keyboard.press('Enter');
  await page.locator('#test-result [data-test="verdict"]').waitFor();
  assert.equal(await page.locator('#test-result [data-test="verdict"]').getAttribute('data-tone'), 'ok');
  assert.equal(await text(page.locator('[data-test="status"]')), '200 OK');
  assert.match(await text(page.locator('[data-test="hec"]')), /^code 0 — Success$/);
  assert.match(await text(page.locator('[data-test="latency"]')), /^\d+ ms$/);
  assert.match(await text(page.locator('[data-test="body"]')), /"code":\s*0/);
  assert.ok((await page.locator('[data-test="headers"] tbody tr').count()) > 0, 'response headers shown');
  ok(`test event: ${await text(page.locator('[data-test="status"]'))}, HEC ${await text(page.locator('[data-test="hec"]'))}, ${await text(page.locator('[data-test="latency"]'))}`);

  // 8. Break the token: replace the stored value with a wrong one, save, test: 403 explained.
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.getByLabel('Authorization header 1 value', { exact: true }).fill(`Splunk ${WRONG_TOKEN}`);
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the save', () => /^Saved the settings/.test(document.getElementById('status').textContent));
  await page.locator('#test-result').evaluate((e) => e.replaceChildren());
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('#test-result [data-test="verdict"]').waitFor();
  const verdict = await text(page.locator('#test-result [data-test="verdict"]'));
  assert.match(verdict, /rejected the credentials/);
  assert.match(verdict, /Authorization header/);
  assert.equal(await text(page.locator('[data-test="status"]')), '403 Forbidden');
  assert.match(await text(page.locator('[data-test="hec"]')), /^code 4 — Invalid token$/);
  await shot(page, 'console-test-event.png', page.locator('#test-event'));
  ok('a wrong token saved: the test event shows 403, HEC code 4, "the SIEM rejected the credentials"');

  // 9. Fix it.
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.getByLabel('Authorization header 1 value', { exact: true }).fill(`Splunk ${SIEM_TOKEN}`);
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the save', () => /^Saved the settings/.test(document.getElementById('status').textContent));
  await page.locator('#test-result').evaluate((e) => e.replaceChildren());
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('#test-result [data-test="verdict"]').waitFor();
  assert.equal(await text(page.locator('[data-test="status"]')), '200 OK');
  ok('token fixed: the test event is accepted again (200)');

  // 10. Field errors from the API land beside the field they name.
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.getByLabel('SIEM URL').fill('not a url');
  await page.getByLabel('SIEM URL').press('Enter');
  await until(page, 'the URL error', () => !!document.querySelector('#url-field .field-error'));
  assert.match(await text(page.locator('#url-field .field-error')), /not an absolute URL/);
  assert.equal(await page.locator('#url').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'url');
  assert.equal(await page.locator('#banner').isHidden(), true, 'a known field is not reported at the top');
  ok(`invalid URL: "${await text(page.locator('#url-field .field-error'))}" shown beside the URL field, which has focus`);
  await page.getByLabel('SIEM URL').fill(SIEM_URL);
  await page.getByLabel('Custom header 2 name').fill('Bad Name');
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the header error', () => !!document.querySelector('.field-error[data-field="custom_headers[1].name"]'));
  const placed = await page.evaluate(() => {
    const err = document.querySelector('.field-error[data-field="custom_headers[1].name"]');
    const rowBefore = err.previousElementSibling;
    return { inRows: rowBefore && rowBefore.classList.contains('row'), value: rowBefore && rowBefore.querySelector('[data-part="name"]').value, focused: document.activeElement.value };
  });
  assert.deepEqual(placed, { inRows: true, value: 'Bad Name', focused: 'Bad Name' });
  assert.equal(await page.locator('#url-field .field-error').count(), 0, 'the old error is cleared');
  await page.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await page.locator('#url').inputValue(), SIEM_URL);
  assert.equal(await page.locator('.field-error').count(), 0);
  ok('a bad custom header name is shown beside that row; Cancel restores the saved values');

  // 11. Dead letters: counts by reason, replay with progress, the count drops to 0.
  await page.getByRole('button', { name: 'Refresh', exact: true }).click();
  await until(page, 'the dead-letter count', (n) => document.getElementById('dlq-count').textContent === String(n), EXPECT_DEAD);
  const reasons = await page.locator('#dlq-reason-rows tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(reasons, [['retries_exhausted', String(EXPECT_DEAD)]]);
  assert.match(await text(page.locator('#dlq-latest')), /status 503/);
  await shot(page, 'console-dead-letters.png', page.locator('#dlq'));
  await page.evaluate(() => {
    window.__dlqCounts = [];
    new MutationObserver(() => window.__dlqCounts.push(document.getElementById('dlq-count').textContent))
      .observe(document.getElementById('dlq-count'), { childList: true, characterData: true, subtree: true });
  });
  await page.getByRole('button', { name: 'Replay' }).click();
  await until(page, 'the replay to finish', (n) => new RegExp(`^Replayed ${n} of ${n}\\.`).test(document.getElementById('dlq-result').textContent), EXPECT_DEAD, REPLAY_TIMEOUT_MS);
  assert.equal(await text(page.locator('#dlq-count')), '0');
  const seen = (await page.evaluate(() => window.__dlqCounts)).map(Number);
  const distinct = seen.filter((n, i) => i === 0 || n !== seen[i - 1]);
  for (let i = 1; i < distinct.length; i++) assert.ok(distinct[i] < distinct[i - 1], `the count only drops: ${distinct}`);
  assert.equal(distinct[distinct.length - 1], 0);
  assert.ok(distinct.some((n) => n > 0 && n < EXPECT_DEAD), `an intermediate count was shown: ${distinct}`);
  assert.equal(await page.locator('#dlq-progress').evaluate((p) => [p.value, p.max].join('/')), `${EXPECT_DEAD}/${EXPECT_DEAD}`);
  assert.equal(await page.locator('#dlq-replay').isDisabled(), true);
  ok(`replayed from the page: count ${distinct.join(' -> ')}; "${await text(page.locator('#dlq-result'))}"`);

  await streamHealth(page);

  // 17. Sign out forgets the token.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('els.console.token')), null);
  ok('signed out: the token is gone from sessionStorage');

  // 13. An org admin signs in on a link to another org: refused there; it sees only its org.
  await page.goto('about:blank');
  await page.goto(`${CONSOLE_URL}#org=${encodeURIComponent(OTHER_ORG)}`, { waitUntil: 'load' });
  await page.locator('#token').fill(ORG_ADMIN_TOKEN);
  await page.locator('#token').press('Enter');
  await page.locator('#app').waitFor({ state: 'visible' });
  await until(page, 'the refusal of the other org', (other) => (document.getElementById('banner').textContent || '').includes(`may not open ${other}`), OTHER_ORG);
  assert.equal(await page.locator('#settings').isHidden(), true, 'no settings of the other org shown');
  assert.equal(await page.locator('#dlq').isHidden(), true, 'no dead letters of the other org shown');
  const who = await text(page.locator('#whoami'));
  assert.match(who, /^Signed in as org_admin \(token tok_[0-9a-f]+\) for /);
  assert.ok(who.includes(ORG) && !who.includes(OTHER_ORG), who);
  const options = await page.locator('#org-select option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(options, [ORG], 'the picker offers only its org');
  assert.equal(await page.locator('#org-new-form').isHidden(), true, 'no way to type another org');
  ok(`org admin signed in: "${who}"; a link to ${OTHER_ORG} is refused, the picker offers only ${ORG}`);

  // 14. The server refuses the other org too, whatever the page would do.
  const direct = await page.evaluate(async (other) => {
    const token = sessionStorage.getItem('els.console.token');
    const r = await fetch(`v1/orgs/${encodeURIComponent(other)}/settings`, { headers: { Authorization: `Bearer ${token}` } });
    const list = await fetch('v1/orgs', { headers: { Authorization: `Bearer ${token}` } });
    return { status: r.status, body: await r.json(), orgs: (await list.json()).orgs };
  }, OTHER_ORG);
  assert.equal(direct.status, 403);
  assert.equal(direct.body.field, 'org');
  assert.ok(!direct.orgs.includes(OTHER_ORG), `GET /v1/orgs lists only its orgs: ${direct.orgs}`);
  ok(`the API answers 403 for ${OTHER_ORG} ("${direct.body.message}") and lists ${JSON.stringify(direct.orgs)}`);

  // 15. Its own org: settings, dead letters, Edit and Save, test event offered.
  await page.locator('#org-select').selectOption(ORG);
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  await until(page, 'its org to open', (org) => document.getElementById('org-name').textContent === org && !document.getElementById('settings').hidden, ORG);
  await until(page, 'the dead-letter count', () => document.getElementById('dlq-count').textContent === '0');
  assert.equal(await page.locator('#url').inputValue(), SIEM_URL);
  assert.equal(await page.locator('#test-toggle').isVisible(), true, 'test events offered');
  assert.equal(await page.locator('#dlq-replay').isVisible(), true, 'replay offered');
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the save', (org) => (document.getElementById('status').textContent || '').startsWith(`Saved the settings of ${org}`), ORG);
  ok(`org admin opened ${ORG}, edited and saved its settings`);

  // 16. Sign out.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('els.console.token')), null);
  ok('org admin signed out');

  // 17. A viewer of the org reads it and is offered nothing that changes it.
  await page.locator('#token').fill(ORG_VIEWER_TOKEN);
  await page.locator('#token').press('Enter');
  await page.locator('#app').waitFor({ state: 'visible' });
  await until(page, 'its org to open', (org) => document.getElementById('org-name').textContent === org && !document.getElementById('settings').hidden, ORG);
  assert.match(await text(page.locator('#whoami')), /^Signed in as org_viewer .* Read only\.$/);
  assert.equal(await page.locator('#url').inputValue(), SIEM_URL);
  for (const id of ['edit', 'test-toggle', 'dlq-replay', 'org-new-form']) {
    assert.equal(await page.locator(`#${id}`).isHidden(), true, `#${id} is not offered to a viewer`);
  }
  assert.equal(await page.locator('#settings-fields').evaluate((f) => f.disabled), true, 'the form is read only');
  assert.equal(await page.locator('#url').isEditable(), false);
  const put = await page.evaluate(async (org) => {
    const token = sessionStorage.getItem('els.console.token');
    const r = await fetch(`v1/orgs/${encodeURIComponent(org)}/settings`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
    return r.status;
  }, ORG);
  assert.equal(put, 403, 'the API refuses a viewer\'s change too');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#login').waitFor({ state: 'visible' });
  ok(`org viewer read ${ORG}: no Edit, test event or Replay offered; a DELETE from the page is 403`);
}

/** The overview's rows as [org, state], in the order shown. */
const overviewRows = (page) => page.locator('#overview-rows tr')
  .evaluateAll((trs) => trs.map((tr) => [tr.dataset.org, tr.dataset.state]));

/** `2026-12-01 10:00:00 UTC`, as the page shows an RFC 3339 time. */
const shown = (rfc3339) => `${new Date(rfc3339).toISOString().slice(0, 19).replace('T', ' ')} UTC`;

async function streamHealth(page) {
  // 12. The overview lists every org's stream with its state.
  await page.getByRole('link', { name: 'Stream health' }).click();
  await page.locator('#overview').waitFor({ state: 'visible' });
  await until(page, `${PAUSED_ORG} in the overview`, (org) => [...document.querySelectorAll('#overview-rows tr')]
    .some((tr) => tr.dataset.org === org), PAUSED_ORG);
  assert.ok(page.url().endsWith('#streams'), page.url());
  assert.equal(await page.locator('#settings').isHidden(), true, 'the org page is hidden');
  assert.equal(await page.getByRole('link', { name: 'Stream health' }).getAttribute('aria-current'), 'page');
  let rows = await overviewRows(page);
  const states = Object.fromEntries(rows);
  assert.equal(states[PAUSED_ORG], 'paused', JSON.stringify(rows));
  assert.ok(ORG in states, `${ORG} is listed: ${JSON.stringify(rows)}`);
  assert.ok('org-seeded' in states, `an org with settings but no events is listed: ${JSON.stringify(rows)}`);
  const orgs = rows.map((r) => r[0]);
  assert.deepEqual(orgs, [...orgs].sort(), 'sorted by org at first');
  const pausedRow = page.locator('#overview-rows tr', { has: page.getByRole('link', { name: PAUSED_ORG, exact: true }) });
  assert.match(await text(pausedRow.locator('[data-test="reason"]')), /HTTP 403.*HEC code 4.*Invalid token/);
  assert.match(await text(page.locator('#overview-summary')), new RegExp(`^${rows.length} streams: .*1 paused`));
  ok(`overview: ${rows.map(([o, st]) => `${o} ${st}`).join(', ')}`);

  // Sorting: by state puts the paused stream first; by held events, descending, too.
  await page.getByRole('button', { name: 'State', exact: true }).click();
  rows = await overviewRows(page);
  assert.equal(rows[0][0], PAUSED_ORG, JSON.stringify(rows));
  assert.equal(await page.locator('th[data-sort="state"]').getAttribute('aria-sort'), 'ascending');
  await page.getByRole('button', { name: 'Held events', exact: true }).click();
  await page.getByRole('button', { name: 'Held events', exact: true }).click();
  assert.equal(await page.locator('th[data-sort="held"]').getAttribute('aria-sort'), 'descending');
  assert.equal((await overviewRows(page))[0][0], PAUSED_ORG);
  assert.equal(await page.locator('th[data-sort="state"]').getAttribute('aria-sort'), null);
  await page.getByRole('button', { name: 'Org', exact: true }).click();
  assert.deepEqual((await overviewRows(page)).map((r) => r[0]), orgs);
  ok('sorting by state and by held events (descending) puts the paused org first; by org restores the order');

  // 13. Filters: by state, by org text, and both cleared.
  await page.getByLabel('State', { exact: true }).selectOption('paused');
  rows = await overviewRows(page);
  assert.deepEqual(rows, [[PAUSED_ORG, 'paused']]);
  assert.match(await text(page.locator('#overview-summary')), new RegExp(`Showing 1 of ${orgs.length}\.$`));
  await page.getByLabel('State', { exact: true }).selectOption('');
  await page.getByLabel('Org id contains').fill('SEEDED');
  assert.deepEqual((await overviewRows(page)).map((r) => r[0]), ['org-seeded']);
  await page.getByLabel('State', { exact: true }).selectOption('paused');
  assert.equal(await page.locator('#overview-empty').isVisible(), true, 'no match is said');
  await page.getByRole('button', { name: 'Clear filters' }).click();
  assert.equal((await overviewRows(page)).length, orgs.length);
  await shot(page, 'console-stream-health.png', page.locator('#overview'));
  ok('filters: state "paused" shows only the paused org, org text "SEEDED" only org-seeded, both together none; cleared');

  // 14. The paused org's page: state, reason with status and HEC code, since, held events.
  await page.getByRole('link', { name: PAUSED_ORG, exact: true }).click();
  await until(page, 'the paused org\'s status', () => document.getElementById('stream-state').dataset.state === 'paused');
  assert.equal(await text(page.locator('#org-name')), PAUSED_ORG);
  assert.ok(page.url().endsWith(`#org=${PAUSED_ORG}`), page.url());
  assert.equal(await text(page.locator('#stream-reason [data-part="status"]')), 'HTTP 403');
  assert.equal(await text(page.locator('#stream-reason [data-part="hec"]')), 'HEC code 4');
  assert.equal(await text(page.locator('#stream-reason [data-part="text"]')), 'Invalid token');
  const since = page.locator('#stream-since time');
  assert.equal(await since.getAttribute('datetime'), PAUSED_SINCE);
  assert.ok((await text(since)).startsWith(shown(PAUSED_SINCE)), await text(since));
  assert.match(await text(page.locator('#stream-held')), new RegExp(`^${EXPECT_HELD} \\(\\d+ bytes\\)$`));
  assert.match(await text(page.locator('#stream-failed')), /^[1-9]\d*$/);
  assert.equal(await page.getByRole('button', { name: 'Resume' }).isVisible(), true);
  assert.equal(await page.locator('#stream-pause').isHidden(), true, 'no Pause for a paused stream');
  const notices = await page.locator('#stream-notice-rows tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.ok(notices.some((n) => n[2] === 'paused' && /HTTP 403, HEC code 4: Invalid token/.test(n[3])), JSON.stringify(notices));
  await shot(page, 'console-stream-status.png', page.locator('#stream'));
  ok(`${PAUSED_ORG}: ${await text(page.locator('#stream-state'))} since ${await text(since)}, reason "${await text(page.locator('#stream-reason'))}", ${await text(page.locator('#stream-held'))} held; Resume offered`);

  // 15. Fix the token in the settings form: saving resumes the stream, the held events go out.
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.getByLabel('Authorization header 1 value', { exact: true }).fill(`Splunk ${SIEM_TOKEN}`);
  await page.getByRole('button', { name: 'Save' }).click();
  await until(page, 'the save', () => /^Saved the settings/.test(document.getElementById('status').textContent));
  await until(page, 'the stream to resume after the fix', () => document.getElementById('stream-state').dataset.state === 'active', undefined, 20_000);
  await until(page, 'the held events to go out', () => /^0 \(/.test(document.getElementById('stream-held').textContent), undefined, 20_000);
  assert.equal(await page.locator('#stream-resume').isHidden(), true);
  assert.equal(await page.getByRole('button', { name: 'Pause' }).isVisible(), true);
  ok('token fixed in the form: the stream went back to active by itself and its held events went out; Pause offered');

  // 16. Pause and Resume with the buttons.
  await page.getByRole('button', { name: 'Pause' }).click();
  await until(page, 'paused by user', () => document.getElementById('stream-state').dataset.state === 'paused_by_user');
  assert.equal(await text(page.locator('#stream-state')), 'paused by user');
  assert.equal(await page.locator('#stream-pause').isHidden(), true);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'stream-resume', 'focus moves to Resume');
  assert.match(await text(page.locator('#stream-result')), /^Paused /);
  await page.keyboard.press('Enter');
  await until(page, 'active again', () => document.getElementById('stream-state').dataset.state === 'active');
  assert.match(await text(page.locator('#stream-result')), new RegExp(`^Resumed ${PAUSED_ORG}: the stream is active\\.$`));
  assert.equal(await page.locator('#stream-resume').isHidden(), true);
  ok('Pause: "paused by user", Resume (keyboard): active again');

  await page.getByRole('link', { name: 'Stream health' }).click();
  await until(page, `${PAUSED_ORG} active in the overview`, (org) => [...document.querySelectorAll('#overview-rows tr')]
    .some((tr) => tr.dataset.org === org && tr.dataset.state === 'active'), PAUSED_ORG);
  assert.doesNotMatch(await text(pausedRow.locator('[data-test="reason"]')), /403|Invalid token/, 'the refusal is no longer the reason');
  ok(`the overview shows ${PAUSED_ORG} active`);
}

async function main() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'els-console-chromium-'));
  let context;
  let page;
  const external = [];
  const pageErrors = [];
  const consoleErrors = [];
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1200, height: 900 },
      deviceScaleFactor: 1,
      timeout: 60_000,
    });
    // Works offline: anything but the admin server is refused and reported.
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue();
      external.push(url.href);
      return route.abort();
    });
    page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      // Chromium logs every non-2xx fetch; those are expected (401, 400, 403 above).
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) consoleErrors.push(m.text());
    });
    await run(page);
    assert.deepEqual(external, [], 'requests to anything but the admin server');
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
    assert.deepEqual(consoleErrors, [], 'console errors (a CSP violation would show here)');
    ok('no request left 127.0.0.1; no page or console errors');
    console.log(`${stepNo} passed, 0 failed`);
  } catch (e) {
    console.error(`FAIL after step ${stepNo}: ${e && e.message ? e.message : e}`);
    if (pageErrors.length) console.error(`page errors: ${pageErrors.join(' | ')}`);
    if (consoleErrors.length) console.error(`console errors: ${consoleErrors.join(' | ')}`);
    if (external.length) console.error(`external requests: ${external.join(' ')}`);
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
