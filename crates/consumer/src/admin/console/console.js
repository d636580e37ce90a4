// ELS settings console: the vendor's "Execution log streaming" page over the admin API, per
// stream of an org (list, add, edit, remove, test, pause, resume), and a stream-health overview
// of every stream (hash routes: #streams, #org=ID, #org=ID&stream=STREAM).
//
// Plain JavaScript, no framework, no external assets. Every text from the server or the user
// is rendered with textContent / text nodes (never parsed as HTML). The admin token lives in this
// tab's sessionStorage only and travels as a bearer token, never in a URL. All API paths are
// relative to the page (served at /console), so a reverse-proxy prefix keeps working.
'use strict';

(() => {
  const TOKEN_KEY = 'els.console.token';
  /** What the settings API shows instead of a stored auth header value. */
  const MASK = '********';
  const EVENT_TYPES = [
    'FLOW_START', 'FLOW_COMPLETE', 'FLOW_FAILED', 'FLOW_CANCELED', 'FLOW_THROTTLED',
    'FLOW_PAUSED', 'FLOW_THIRD_PARTY_RATE_LIMITED',
  ];
  const REQUEST_TIMEOUT_MS = 20000;
  const REPLAY_TIMEOUT_MS = 120000;
  const SAMPLE_TEMPLATE = '{\n  "source": "els",\n  "event": "${event}"\n}';
  /** The stream of the settings from before streams: it keeps the org-level routes. */
  const DEFAULT_STREAM = 'default';
  const STREAM_ID = /^[a-z0-9][a-z0-9_-]{0,31}$/;
  const ENDPOINT_LABELS = { hec: 'Splunk HEC', http: 'HTTP', elasticsearch: 'Elasticsearch', datadog: 'Datadog' };
  const HTTP_FORMAT_LABELS = { single: 'single', ndjson: 'NDJSON', json_array: 'JSON array' };

  const $ = (id) => document.getElementById(id);

  /** Build an element; string children become text nodes (escaped by construction). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, '');
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  const state = {
    /** The signed-in token as `GET /v1/whoami` tells it: role, orgs, id, expiry. */
    me: null,
    org: null,
    /** The stream of the org shown in the status panel, settings form and test event. */
    streamId: DEFAULT_STREAM,
    /** `GET v1/orgs/{org}/streams` as last read: {org, max_streams, streams}. */
    streamList: null,
    /** The stream's settings as last read or saved (redacted), or null when it has none. */
    saved: null,
    editing: false,
    /** Dead letters of the org at the last refresh. */
    deadLetters: 0,
    replaying: false,
    /** 'org' (picker, settings, dead letters) or 'overview' (stream health), from the hash. */
    page: 'org',
    /** Every org's stream status (all pages), the counts by state, and the table's order. */
    streams: [],
    byState: {},
    sort: { key: 'org', dir: 1 },
    /** The open org's stream status, and the timer that keeps it fresh. */
    stream: null,
    streamTimer: null,
  };

  // ---------------------------------------------------------------- messages

  function setStatus(text, ok) {
    const s = $('status');
    s.textContent = text || '';
    s.classList.toggle('ok', Boolean(ok));
  }

  function showBanner(text) {
    const b = $('banner');
    b.textContent = text || '';
    b.hidden = !text;
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  /**
   * Call the admin API with the signed-in token. Resolves `{status, data}`; rejects with an
   * ApiError (status 0 when the server could not be reached or did not answer in time).
   */
  async function api(method, path, body, options) {
    const opts = options || {};
    const timeoutMs = opts.timeoutMs || REQUEST_TIMEOUT_MS;
    const token = sessionStorage.getItem(TOKEN_KEY) || '';
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      let response;
      try {
        response = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: controller.signal,
          cache: 'no-store',
          credentials: 'omit',
          redirect: 'error',
        });
      } catch (e) {
        const why = e && e.name === 'AbortError'
          ? `no answer within ${Math.round(timeoutMs / 1000)} s`
          : 'cannot reach the admin server';
        throw new ApiError(0, { message: why });
      }
      const text = await response.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch (_) {
        data = { message: text.slice(0, 300) };
      }
      const accepted = response.ok || (opts.accept || []).includes(response.status);
      if (!accepted) {
        const error = new ApiError(response.status, data);
        if (response.status === 401 && !opts.noSignOut) {
          signOut('The admin token was refused (401). Sign in again.');
          error.signedOut = true;
        }
        throw error;
      }
      return { status: response.status, data };
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError(0, { message: e && e.name === 'AbortError' ? `no answer within ${Math.round(timeoutMs / 1000)} s` : String(e) });
    } finally {
      clearTimeout(timer);
    }
  }

  const orgPath = (org, rest) => `v1/orgs/${encodeURIComponent(org)}/${rest}`;

  /**
   * A stream's route: `''` (its settings), `status`, `test`, `pause`, `resume`. The stream
   * `default` keeps the org-level routes (`settings`, `status`, ...), the others are under
   * `streams/{stream}`.
   */
  function streamPath(org, stream, rest) {
    if (stream === DEFAULT_STREAM) return orgPath(org, rest || 'settings');
    const base = orgPath(org, `streams/${encodeURIComponent(stream)}`);
    return rest ? `${base}/${rest}` : base;
  }

  /** `org-1`, or `org-1 stream lake` for a stream other than default. */
  const streamLabel = (org, stream) => (stream === DEFAULT_STREAM ? org : `${org} stream ${stream}`);

  function describe(e) {
    if (!(e instanceof ApiError)) return String(e);
    if (e.status === 0) return e.message;
    const field = e.body && e.body.field ? ` (${e.body.field})` : '';
    const reason = e.body && e.body.error ? ` ${e.body.error}` : '';
    return `${e.status}${reason}${field}: ${e.message}`;
  }

  // ---------------------------------------------------------------- sign in / out

  async function signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      state.me = (await api('GET', 'v1/whoami', undefined, { noSignOut: true })).data;
      await loadOrgs();
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      state.me = null;
      throw e;
    }
    showIdentity();
    $('login').hidden = true;
    $('app').hidden = false;
    $('sign-out').hidden = false;
    showBanner('');
    startStreamTimer();
    await route();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopStreamTimer();
    state.me = null;
    state.org = null;
    state.streamId = DEFAULT_STREAM;
    state.streamList = null;
    state.saved = null;
    state.stream = null;
    state.streams = [];
    $('app').hidden = true;
    $('sign-out').hidden = true;
    $('login').hidden = false;
    $('token').value = '';
    setStatus('');
    if (message) showBanner(message);
    $('token').focus();
  }

  /** `#org=ID` or `#org=ID&stream=STREAM` as {org, stream}; null for anything else. */
  function orgFromHash() {
    const m = /^#org=([^&]+)(?:&stream=(.+))?$/.exec(location.hash);
    if (!m) return null;
    try {
      return { org: decodeURIComponent(m[1]), stream: m[2] ? decodeURIComponent(m[2]) : DEFAULT_STREAM };
    } catch (_) {
      return null;
    }
  }

  const orgHash = (org, stream) => `#org=${encodeURIComponent(org)}${stream && stream !== DEFAULT_STREAM ? `&stream=${encodeURIComponent(stream)}` : ''}`;

  // ---------------------------------------------------------------- orgs

  // ---------------------------------------------------------------- who is signed in

  /** Limited to some orgs (org_admin, org_viewer)? A super admin is not. */
  const scoped = () => !!state.me && state.me.role !== 'super_admin';
  /** May change things (settings, test events, replays)? */
  const canWrite = () => !!state.me && state.me.can_write;
  /** May this token open `org` at all? */
  const covers = (org) => !scoped() || state.me.orgs.includes(org);

  /** Say who is signed in, and offer only what the token may do. */
  function showIdentity() {
    const me = state.me;
    const who = $('whoami');
    const orgs = scoped() ? ` for ${me.orgs.join(', ')}` : ' for every org';
    const until = me.expires_at ? `, expires ${when(me.expires_at)}` : '';
    who.textContent = `Signed in as ${me.role} (token ${me.token_id})${orgs}${until}.${canWrite() ? '' : ' Read only.'}`;
    who.hidden = false;
    // Another org id: only a super admin may open orgs the token does not name.
    $('org-new-form').hidden = scoped();
    for (const id of ['edit', 'test-toggle', 'dlq-replay', 'stream-add-form']) $(id).hidden = !canWrite();
  }

  async function loadOrgs() {
    const { data } = await api('GET', 'v1/orgs', undefined, { noSignOut: true });
    const select = $('org-select');
    select.replaceChildren();
    // A scoped token picks among its own orgs (with settings or not yet).
    const orgs = scoped() ? [...state.me.orgs] : (data && data.orgs) || [];
    if (orgs.length === 0) select.append(el('option', { value: '', text: '(none yet)' }));
    for (const org of orgs) select.append(el('option', { value: org, text: org }));
    if (state.org && orgs.includes(state.org)) select.value = state.org;
  }

  async function openOrg(org, streamId) {
    clearErrors();
    showBanner('');
    const stream = streamId || DEFAULT_STREAM;
    if (!covers(org)) {
      $('settings').hidden = true;
      $('dlq').hidden = true;
      $('org-streams').hidden = true;
      closeTest();
      showBanner(`This token may not open ${org}: it is limited to ${state.me.orgs.join(', ')}.`);
      setStatus('');
      return;
    }
    const sameOrg = state.org === org;
    // Which stream's settings the form holds, once they are loaded (tests wait on it).
    delete $('settings').dataset.loaded;
    state.org = org;
    state.streamId = stream;
    history.replaceState(null, '', orgHash(org, stream));
    setPage('org');
    $('org-name').textContent = org;
    $('settings-stream').textContent = stream;
    $('test-stream').textContent = stream;
    $('stream-title').textContent = `Stream status of ${streamLabel(org, stream)}`;
    $('org-streams-title').textContent = `Streams of ${org}`;
    if (!sameOrg) state.streamList = null;
    $('org-streams').hidden = false;
    renderStreamList();
    refreshStreamList();
    clearStream('Loading…');
    $('stream-result').textContent = '';
    $('stream').hidden = false;
    refreshStream();
    $('settings').hidden = false;
    $('dlq').hidden = false;
    closeTest();
    $('test-result').replaceChildren();
    $('dlq-result').textContent = '';
    $('dlq-progress-box').hidden = true;
    setStatus(`Loading ${streamLabel(org, stream)}…`);
    let saved = null;
    try {
      saved = (await api('GET', streamPath(org, stream, ''))).data;
    } catch (e) {
      if (e.signedOut) return;
      if (!(e instanceof ApiError && e.status === 404)) {
        showBanner(`Could not load the settings of ${streamLabel(org, stream)}: ${describe(e)}`);
        setStatus('');
        return;
      }
    }
    if (org !== state.org || stream !== state.streamId) return; // another stream was opened meanwhile
    state.saved = saved;
    fillForm(saved);
    $('settings').dataset.loaded = stream;
    const note = $('settings-note');
    if (saved) {
      note.hidden = true;
      setEditing(false);
      setStatus(stream === DEFAULT_STREAM
        ? `Showing the saved settings of ${org}.`
        : `Showing the saved settings of ${org}, stream ${stream}.`, true);
    } else if (stream === DEFAULT_STREAM) {
      note.textContent = canWrite()
        ? `${org} has no settings of its own yet (it uses the default, if any). Fill in the form and Save.`
        : `${org} has no settings of its own yet (it uses the default, if any).`;
      note.hidden = false;
      setEditing(canWrite());
      setStatus(`New settings for ${org}.`);
    } else {
      note.textContent = canWrite()
        ? `New stream ${stream} of ${org}: fill in the form and Save to add it.`
        : `${org} has no stream ${stream}.`;
      note.hidden = false;
      setEditing(canWrite());
      setStatus(`New stream ${stream} for ${org}.`);
    }
    refreshDeadLetters();
  }

  // ---------------------------------------------------------------- the org's streams

  function endpointText(settings) {
    const kind = (settings && settings.endpoint) || 'hec';
    const label = ENDPOINT_LABELS[kind] || kind;
    if (kind === 'http') {
      const format = (settings.http && settings.http.format) || 'single';
      return `${label} (${HTTP_FORMAT_LABELS[format] || format})`;
    }
    return label;
  }

  function renderStreamList() {
    const list = state.streamList;
    const body = $('streams-rows');
    body.replaceChildren();
    const entries = (list && list.streams) || [];
    for (const entry of entries) {
      const s = entry.settings || {};
      const id = entry.id;
      const status = entry.status || {};
      const current = id === state.streamId;
      const actions = el('div', { class: 'row-actions' },
        el('button', { type: 'button', class: 'secondary', 'aria-label': `Open stream ${id}`, 'data-action': 'open', text: 'Open', onclick: () => openOrg(state.org, id) }));
      if (canWrite()) {
        actions.append(
          el('button', { type: 'button', class: 'secondary', 'aria-label': `Test stream ${id}`, 'data-action': 'test', text: 'Test', onclick: () => testStream(id) }),
          el('button', { type: 'button', class: 'danger', 'aria-label': `Remove stream ${id}`, 'data-action': 'remove', text: 'Remove', onclick: () => removeStream(id) }));
      }
      body.append(el('tr', { 'data-stream': id, 'data-state': status.state, 'aria-current': current ? 'true' : null },
        el('td', { class: 'mono', 'data-test': 'id', text: id }),
        el('td', { 'data-test': 'name', text: s.name || '–' }),
        el('td', { 'data-test': 'endpoint', 'data-endpoint': s.endpoint || 'hec', text: endpointText(s) }),
        el('td', { class: 'mono url', 'data-test': 'url', title: s.url || '', text: s.url || '–' }),
        el('td', { 'data-test': 'enabled', text: s.enabled === false ? 'no' : 'yes' }),
        el('td', { 'data-test': 'state' }, status.state ? stateBadge(status.state) : '–'),
        el('td', {}, actions)));
    }
    const empty = $('streams-empty');
    empty.hidden = !list || entries.length > 0;
    empty.textContent = list ? `${list.org} has no streams of its own: its events use the default settings, if any.` : '';
    const summary = $('streams-summary');
    if (!list) {
      summary.textContent = 'Loading the streams…';
      return;
    }
    const full = entries.length >= list.max_streams;
    summary.textContent = `${entries.length} of at most ${list.max_streams} stream${list.max_streams === 1 ? '' : 's'}.`
      + (full ? ' The org has the most streams allowed: remove one to add another.' : '')
      + (entries.some((e) => e.id === state.streamId) || state.streamId === DEFAULT_STREAM ? '' : ` Stream ${state.streamId} is not saved yet.`);
    $('stream-add').disabled = full;
    $('streams-caption').textContent = `Streams of ${list.org}`;
  }

  /** Read the open org's streams (settings and status of each). */
  async function refreshStreamList(quiet) {
    const org = state.org;
    if (!org) return;
    try {
      const { data } = await api('GET', orgPath(org, 'streams'));
      if (org !== state.org) return;
      state.streamList = data;
      renderStreamList();
    } catch (e) {
      if (e.signedOut || org !== state.org || quiet) return;
      $('streams-summary').textContent = `Could not read the streams: ${describe(e)}`;
    }
  }

  /** Add: check the id here (the API checks it again), then open it as a new stream to fill in. */
  async function addStream() {
    clearErrors();
    const id = $('stream-new-id').value.trim();
    const list = state.streamList;
    let problem = null;
    if (!STREAM_ID.test(id)) {
      problem = 'A stream id is 1-32 characters: lowercase letters, digits, "_" or "-", starting with a letter or digit.';
    } else if (list && list.streams.some((e) => e.id === id)) {
      problem = `${state.org} already has a stream ${id}: open it from the list.`;
    } else if (list && list.streams.length >= list.max_streams) {
      problem = `${state.org} has ${list.streams.length} streams, the most allowed: remove one first.`;
    }
    if (problem) {
      showFieldError('stream', problem, {});
      return;
    }
    const name = $('stream-new-name').value.trim();
    closeTest();
    $('test-result').replaceChildren();
    await openOrg(state.org, id);
    if (state.streamId === id && !state.saved) {
      $('stream-name').value = name;
      $('url').focus();
    }
  }

  async function removeStream(id) {
    const org = state.org;
    const entry = ((state.streamList && state.streamList.streams) || []).find((e) => e.id === id);
    const url = entry && entry.settings && entry.settings.url;
    const what = id === DEFAULT_STREAM ? `the settings of ${org} (stream default)` : `stream ${id} of ${org}`;
    if (!window.confirm(`Remove ${what}? Its events stop streaming${url ? ` to ${url}` : ''}. This cannot be undone.`)) {
      setStatus('Nothing removed.');
      return;
    }
    setStatus(`Removing ${what}…`);
    try {
      const { data } = await api('DELETE', streamPath(org, id, ''));
      const message = data && data.deleted ? `Removed ${what}.` : `${org} had no stream ${id}.`;
      if (id === state.streamId) await openOrg(org, DEFAULT_STREAM);
      else await refreshStreamList();
      setStatus(message, true);
      await loadOrgs().catch(() => {});
      $('streams-refresh').focus();
    } catch (e) {
      if (e.signedOut) return;
      showBanner(`Not removed: ${describe(e)}`);
      setStatus('Not removed.');
    }
  }

  /** The row's Test: open the stream (if another is open), then send its test event. */
  async function testStream(id) {
    if (id !== state.streamId) await openOrg(state.org, id);
    if (id !== state.streamId) return;
    openTest();
    await sendTest();
  }

  // ---------------------------------------------------------------- rows (headers, fields)

  let rowSeq = 0;

  /**
   * One key/value row. `kind` is 'auth' (value is a password input; a stored value shows as
   * the mask), 'header' or 'field'.
   */
  function makeRow(kind, container, item) {
    rowSeq += 1;
    const n = container.children.length + 1;
    const what = { auth: 'Authorization header', header: 'Custom header', field: 'Custom field' }[kind];
    const keyName = kind === 'field' ? 'key' : 'name';
    const row = el('div', { class: 'row', 'data-kind': kind, 'data-row': String(rowSeq) });
    const keyInput = el('input', {
      type: 'text', spellcheck: 'false', autocomplete: 'off', 'data-part': keyName,
      'aria-label': `${what} ${n} ${keyName}`,
      placeholder: kind === 'auth' ? 'Authorization' : (kind === 'header' ? 'X-Team' : 'okta_org'),
    });
    keyInput.value = (item && item[keyName]) || '';
    const valueCell = el('div', { class: 'cell' });
    let valueInput;
    if (kind === 'auth') {
      const stored = Boolean(item && item.value === MASK);
      row.dataset.stored = stored ? '1' : '';
      valueInput = el('input', {
        type: 'password', autocomplete: 'new-password', spellcheck: 'false', 'data-part': 'value',
        'aria-label': `${what} ${n} value`,
        placeholder: stored ? 'Type a new value to replace the stored one' : 'Splunk <token>',
      });
      if (stored) {
        valueCell.append(el('div', { class: 'stored' },
          el('span', { class: 'masked', 'aria-label': `${what} ${n} value: stored, hidden`, 'data-masked': '' }, MASK),
          el('span', { class: 'hint', text: 'stored, encrypted' })));
      } else if (item && item.value) {
        valueInput.value = item.value;
      }
    } else {
      valueInput = el('input', {
        type: 'text', spellcheck: 'false', autocomplete: 'off', 'data-part': 'value',
        'aria-label': `${what} ${n} value`,
        placeholder: kind === 'header' ? 'secops' : '${org_id}',
      });
      valueInput.value = (item && item.value) || '';
    }
    valueCell.append(valueInput);
    const remove = el('button', {
      type: 'button', class: 'secondary', 'aria-label': `Remove ${what.toLowerCase()} ${n}`,
      text: 'Remove',
    });
    remove.addEventListener('click', () => {
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      renumber(container, kind);
      const focusTarget = next ? next.querySelector('input') : addButtonFor(kind);
      if (focusTarget) focusTarget.focus();
    });
    row.append(el('div', { class: 'cell' }, keyInput), valueCell, remove);
    container.append(row);
    return row;
  }

  function addButtonFor(kind) {
    return $({ auth: 'add-auth', header: 'add-custom-header', field: 'add-custom-field' }[kind]);
  }

  /** Keep the accessible names numbered 1..n after a removal. */
  function renumber(container, kind) {
    const what = { auth: 'Authorization header', header: 'Custom header', field: 'Custom field' }[kind];
    [...container.children].forEach((row, i) => {
      const n = i + 1;
      for (const input of row.querySelectorAll('input')) {
        input.setAttribute('aria-label', `${what} ${n} ${input.dataset.part}`);
      }
      const masked = row.querySelector('[data-masked]');
      if (masked) masked.setAttribute('aria-label', `${what} ${n} value: stored, hidden`);
      const button = row.querySelector('button');
      if (button) button.setAttribute('aria-label', `Remove ${what.toLowerCase()} ${n}`);
    });
  }

  // ---------------------------------------------------------------- flows

  function flowIds() {
    return [...$('flow-list').querySelectorAll('li')].map((li) => li.dataset.flow);
  }

  function addFlow(id) {
    const flow = id.trim();
    if (!flow || flowIds().includes(flow)) return false;
    const li = el('li', { 'data-flow': flow });
    const remove = el('button', { type: 'button', class: 'secondary', 'aria-label': `Remove flow ${flow}`, text: 'Remove' });
    remove.addEventListener('click', () => {
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      updateFlowEmpty();
      (next ? next.querySelector('button') : $('flow-new')).focus();
    });
    li.append(el('code', { text: flow }), remove);
    $('flow-list').append(li);
    updateFlowEmpty();
    return true;
  }

  function updateFlowEmpty() {
    $('flow-empty').hidden = flowIds().length > 0;
  }

  // ---------------------------------------------------------------- form <-> settings

  function fillForm(s) {
    const settings = s || {};
    $('enabled').checked = s ? settings.enabled !== false : true;
    $('stream-name').value = settings.name || '';
    $('url').value = settings.url || '';
    $('endpoint').value = ENDPOINT_LABELS[settings.endpoint] ? settings.endpoint : 'hec';

    const http = settings.http || {};
    $('http-format').value = HTTP_FORMAT_LABELS[http.format] ? http.format : 'single';
    $('http-max-events').value = http.max_events ? String(http.max_events) : '';
    $('http-max-bytes').value = http.max_bytes ? String(http.max_bytes) : '';
    const es = settings.elasticsearch || {};
    $('es-index').value = es.index || '';
    $('es-op-type').value = es.op_type === 'index' ? 'index' : 'create';
    $('es-max-events').value = es.max_events ? String(es.max_events) : '';
    $('es-max-bytes').value = es.max_bytes ? String(es.max_bytes) : '';
    const dd = settings.datadog || {};
    $('dd-source').value = dd.ddsource || '';
    $('dd-service').value = dd.service || '';
    $('dd-tags').value = dd.ddtags || '';
    const oauth = settings.oauth2 || null;
    $('oauth2-on').checked = Boolean(oauth);
    $('oauth2-token-url').value = (oauth && oauth.token_url) || '';
    $('oauth2-client-id').value = (oauth && oauth.client_id) || '';
    $('oauth2-scope').value = (oauth && oauth.scope) || '';
    const secretStored = Boolean(oauth && oauth.client_secret === MASK);
    $('oauth2-secret-stored').hidden = !secretStored;
    $('oauth2-client-secret').value = oauth && !secretStored ? (oauth.client_secret || '') : '';
    $('oauth2-client-secret').placeholder = secretStored ? 'Type a new secret to replace the stored one' : '';
    $('oauth2-client-secret').dataset.stored = secretStored ? '1' : '';
    syncEndpoint();
    $('allow-http').checked = Boolean(settings.allow_http);

    const events = settings.events === undefined ? 'all' : settings.events;
    const all = typeof events === 'string';
    $('ev-all').checked = all;
    for (const t of EVENT_TYPES) $(`ev-${t}`).checked = all || (Array.isArray(events) && events.includes(t));
    syncEventChecks();

    for (const [kind, id, list] of [
      ['auth', 'auth-rows', settings.auth_headers],
      ['header', 'custom-header-rows', settings.custom_headers],
      ['field', 'custom-field-rows', settings.custom_fields],
    ]) {
      const container = $(id);
      container.replaceChildren();
      for (const item of list || []) makeRow(kind, container, item);
    }
    if (!s) makeRow('auth', $('auth-rows'), null);

    const template = settings.body_template;
    $('default-body').checked = template === undefined || template === null;
    $('body-template').value = typeof template === 'string' ? template : '';
    syncBody();

    const flows = settings.flows || { mode: 'all', flow_ids: [] };
    const mode = ['all', 'include', 'exclude'].includes(flows.mode) ? flows.mode : 'all';
    $(`flow-mode-${mode}`).checked = true;
    $('flow-list').replaceChildren();
    for (const f of flows.flow_ids || []) addFlow(f);
    updateFlowEmpty();
    $('flow-new').value = '';

    const limit = settings.max_events;
    $('limit-on').checked = Boolean(limit);
    $('limit-rate').value = limit ? String(limit.rate) : '';
    $('limit-per').value = limit && limit.per === 'minute' ? 'minute' : 'second';
    $('limit-burst').value = limit && limit.burst ? String(limit.burst) : '';
    $('limit-policy').value = limit && limit.policy === 'dead_letter' ? 'dead_letter' : 'delay';
    syncLimit();

    const hec = settings.hec || {};
    $('hec-source').value = hec.source || '';
    $('hec-sourcetype').value = hec.sourcetype || '';
    $('hec-index').value = hec.index || '';
    $('hec-ack').value = hec.ack === true ? 'true' : hec.ack === false ? 'false' : 'auto';
  }

  function syncEventChecks() {
    const all = $('ev-all').checked;
    for (const t of EVENT_TYPES) {
      const box = $(`ev-${t}`);
      if (all) box.checked = true;
      box.disabled = all;
    }
  }

  function syncBody() {
    const useDefault = $('default-body').checked;
    const area = $('body-template');
    area.disabled = useDefault;
    if (!useDefault && !area.value.trim()) area.value = SAMPLE_TEMPLATE;
  }

  /** Show the options of the chosen endpoint type only; OAuth2 is for every type but HEC. */
  function syncEndpoint() {
    const kind = $('endpoint').value;
    $('hec-field').hidden = kind !== 'hec';
    $('http-field').hidden = kind !== 'http';
    $('es-field').hidden = kind !== 'elasticsearch';
    $('dd-field').hidden = kind !== 'datadog';
    $('oauth2-field').hidden = kind === 'hec';
    const batched = $('http-format').value !== 'single';
    for (const id of ['http-max-events', 'http-max-bytes']) $(id).disabled = !batched;
    const oauth = $('oauth2-on').checked;
    for (const id of ['oauth2-token-url', 'oauth2-client-id', 'oauth2-client-secret', 'oauth2-scope']) $(id).disabled = !oauth;
  }

  function syncLimit() {
    const on = $('limit-on').checked;
    for (const id of ['limit-rate', 'limit-per', 'limit-burst', 'limit-policy']) $(id).disabled = !on;
  }

  function numberOrNull(text) {
    const t = text.trim();
    if (t === '') return null;
    const n = Number(t);
    return Number.isFinite(n) ? n : t; // a non-number goes as typed: the API names the field
  }

  /**
   * The settings document to PUT, and for each array the row elements in the order sent, so an
   * error such as `auth_headers[1].value` lands beside the right input.
   */
  function collect() {
    const s = Object.assign({}, state.saved || {});
    const targets = { auth_headers: [], custom_headers: [], custom_fields: [] };
    s.enabled = $('enabled').checked;
    const name = $('stream-name').value.trim();
    if (name) s.name = name;
    else delete s.name;
    s.url = $('url').value.trim();
    s.endpoint = $('endpoint').value;
    // The endpoint type's own options go only with that type (the API refuses them elsewhere).
    for (const key of ['http', 'elasticsearch', 'datadog', 'oauth2']) delete s[key];
    const caps = (target, eventsId, bytesId) => {
      const events = numberOrNull($(eventsId).value);
      const bytes = numberOrNull($(bytesId).value);
      if (events !== null) target.max_events = events;
      if (bytes !== null) target.max_bytes = bytes;
      return target;
    };
    if (s.endpoint === 'http') {
      const format = $('http-format').value;
      const http = format === 'single' ? { format } : caps({ format }, 'http-max-events', 'http-max-bytes');
      if (format !== 'single' || Object.keys(http).length > 1) s.http = http;
    } else if (s.endpoint === 'elasticsearch') {
      s.elasticsearch = caps({ index: $('es-index').value.trim(), op_type: $('es-op-type').value }, 'es-max-events', 'es-max-bytes');
    } else if (s.endpoint === 'datadog') {
      const dd = {};
      const ddsource = $('dd-source').value.trim();
      const service = $('dd-service').value.trim();
      const ddtags = $('dd-tags').value.trim();
      if (ddsource) dd.ddsource = ddsource;
      if (service) dd.service = service;
      if (ddtags) dd.ddtags = ddtags;
      if (Object.keys(dd).length) s.datadog = dd;
    }
    if (s.endpoint !== 'hec' && $('oauth2-on').checked) {
      const secretInput = $('oauth2-client-secret');
      const oauth = {
        token_url: $('oauth2-token-url').value.trim(),
        client_id: $('oauth2-client-id').value.trim(),
        // Empty with a stored secret: the mask, which keeps the stored one.
        client_secret: secretInput.value === '' && secretInput.dataset.stored ? MASK : secretInput.value,
      };
      const scope = $('oauth2-scope').value.trim();
      if (scope) oauth.scope = scope;
      s.oauth2 = oauth;
    }
    s.allow_http = $('allow-http').checked;
    // Types without a box here (new ones, subscribed to by name through the API) are kept.
    const other = Array.isArray(state.saved && state.saved.events)
      ? state.saved.events.filter((t) => !EVENT_TYPES.includes(t))
      : [];
    s.events = $('ev-all').checked ? 'all' : EVENT_TYPES.filter((t) => $(`ev-${t}`).checked).concat(other);

    const pairs = (containerId, keyName, kind, field) => {
      const out = [];
      for (const row of $(containerId).children) {
        const key = row.querySelector(`[data-part="${keyName}"]`).value.trim();
        const valueInput = row.querySelector('[data-part="value"]');
        let value = valueInput.value;
        if (kind === 'auth' && value === '' && row.dataset.stored) value = MASK;
        if (!key && !value) continue; // an untouched empty row
        out.push({ [keyName]: key, value });
        targets[field].push(row);
      }
      return out;
    };
    s.auth_headers = pairs('auth-rows', 'name', 'auth', 'auth_headers');
    s.custom_headers = pairs('custom-header-rows', 'name', 'header', 'custom_headers');
    s.custom_fields = pairs('custom-field-rows', 'key', 'field', 'custom_fields');

    if ($('default-body').checked) delete s.body_template;
    else s.body_template = $('body-template').value;

    const mode = (document.querySelector('input[name="flow-mode"]:checked') || { value: 'all' }).value;
    s.flows = { mode, flow_ids: flowIds() };

    if ($('limit-on').checked) {
      const limit = {
        rate: numberOrNull($('limit-rate').value),
        per: $('limit-per').value,
        policy: $('limit-policy').value,
      };
      const burst = numberOrNull($('limit-burst').value);
      if (burst !== null) limit.burst = burst;
      s.max_events = limit;
    } else {
      delete s.max_events;
    }

    const hec = {};
    const source = $('hec-source').value.trim();
    const sourcetype = $('hec-sourcetype').value.trim();
    const index = $('hec-index').value.trim();
    if (source) hec.source = source;
    if (sourcetype) hec.sourcetype = sourcetype;
    if (index) hec.index = index;
    const ack = $('hec-ack').value;
    if (ack !== 'auto') hec.ack = ack === 'true';
    s.hec = hec;
    return { settings: s, targets };
  }

  // ---------------------------------------------------------------- field errors

  const SIMPLE_FIELDS = {
    token: 'token',
    stream: 'stream-new-id',
    name: 'stream-name',
    enabled: 'enabled',
    url: 'url',
    endpoint: 'endpoint',
    allow_http: 'allow-http',
    events: 'ev-all',
    body_template: 'body-template',
    'flows.mode': 'flow-mode-all',
    'flows.flow_ids': 'flow-new',
    flows: 'flow-mode-all',
    max_events: 'limit-on',
    'max_events.rate': 'limit-rate',
    'max_events.per': 'limit-per',
    'max_events.burst': 'limit-burst',
    'max_events.policy': 'limit-policy',
    hec: 'hec-source',
    'hec.source': 'hec-source',
    'hec.sourcetype': 'hec-sourcetype',
    'hec.index': 'hec-index',
    'hec.ack': 'hec-ack',
    http: 'http-format',
    'http.format': 'http-format',
    'http.max_events': 'http-max-events',
    'http.max_bytes': 'http-max-bytes',
    elasticsearch: 'es-index',
    'elasticsearch.index': 'es-index',
    'elasticsearch.op_type': 'es-op-type',
    'elasticsearch.max_events': 'es-max-events',
    'elasticsearch.max_bytes': 'es-max-bytes',
    datadog: 'dd-source',
    'datadog.ddsource': 'dd-source',
    'datadog.service': 'dd-service',
    'datadog.ddtags': 'dd-tags',
    oauth2: 'oauth2-on',
    'oauth2.token_url': 'oauth2-token-url',
    'oauth2.client_id': 'oauth2-client-id',
    'oauth2.client_secret': 'oauth2-client-secret',
    'oauth2.scope': 'oauth2-scope',
    auth_headers: 'add-auth',
    custom_headers: 'add-custom-header',
    custom_fields: 'add-custom-field',
  };

  /** The input a field path of the API names, or null when the page has none for it. */
  function inputFor(path, targets) {
    if (!path) return null;
    const m = /^(auth_headers|custom_headers|custom_fields)\[(\d+)\](?:\.(\w+))?/.exec(path);
    if (m) {
      const row = (targets[m[1]] || [])[Number(m[2])];
      if (!row) return null;
      const part = m[3] || (m[1] === 'custom_fields' ? 'key' : 'name');
      return row.querySelector(`[data-part="${part}"]`) || row.querySelector('input');
    }
    const id = SIMPLE_FIELDS[path] || SIMPLE_FIELDS[path.split('.')[0]];
    return id ? $(id) : null;
  }

  /** Where the message goes: under the row for pairs, under the group for checkbox groups. */
  function placeError(input, p) {
    const row = input.closest('.row') || input.closest('.checks');
    const field = input.closest('.field');
    if (row) row.after(p);
    else if (field) field.append(p);
    else input.after(p);
  }

  function clearErrors() {
    for (const e of document.querySelectorAll('.field-error')) e.remove();
    for (const i of document.querySelectorAll('[aria-invalid="true"]')) {
      i.removeAttribute('aria-invalid');
      const described = (i.getAttribute('aria-describedby') || '').split(' ').filter((d) => d && !d.startsWith('err-'));
      if (described.length) i.setAttribute('aria-describedby', described.join(' '));
      else i.removeAttribute('aria-describedby');
    }
    showBanner('');
  }

  let errorSeq = 0;

  /** Show the API's `{field, message}` beside the input it names; true when placed. */
  function showFieldError(path, message, targets) {
    const input = inputFor(path, targets);
    if (!input) return false;
    errorSeq += 1;
    const id = `err-${errorSeq}`;
    const p = el('p', { class: 'field-error', id, 'data-field': path, text: message });
    placeError(input, p);
    input.setAttribute('aria-invalid', 'true');
    const described = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    input.setAttribute('aria-describedby', [...described, id].join(' '));
    input.focus();
    return true;
  }

  // ---------------------------------------------------------------- edit / save

  function setEditing(on) {
    state.editing = on;
    $('settings-fields').disabled = !on;
    $('edit-actions').hidden = !on;
    $('edit').hidden = on || !canWrite();
    $('cancel').hidden = !state.saved; // a new org has nothing to go back to
    if (on) {
      syncEventChecks();
      syncBody();
      syncLimit();
      syncEndpoint();
    }
  }

  async function save() {
    clearErrors();
    const { settings, targets } = collect();
    const org = state.org;
    const stream = state.streamId;
    $('save').disabled = true;
    setStatus('Saving…');
    try {
      const { data } = await api('PUT', streamPath(org, stream, ''), settings);
      if (org !== state.org || stream !== state.streamId) return;
      state.saved = data;
      fillForm(data);
      setEditing(false);
      $('settings-note').hidden = true;
      setStatus(stream === DEFAULT_STREAM
        ? `Saved the settings of ${org}. Every consumer applies them within about a second.`
        : `Saved the settings of ${org}, stream ${stream}. Every consumer applies them within about a second.`, true);
      if ($('stream-new-id').value.trim() === stream) {
        $('stream-new-id').value = '';
        $('stream-new-name').value = '';
      }
      refreshStreamList();
      refreshStream(true); // a stream saved for the first time has a status now
      // Saving resumes a paused stream: show it once the consumers have applied the settings.
      setTimeout(() => {
        if (org === state.org && stream === state.streamId) refreshStream(true);
        if (org === state.org) refreshStreamList(true);
      }, 1500);
      await loadOrgs().catch(() => {});
      $('org-select').value = org;
      $('edit').focus();
    } catch (e) {
      if (e.signedOut) return;
      setStatus('Not saved.');
      const field = e instanceof ApiError ? e.body.field : null;
      const message = e instanceof ApiError ? e.message : String(e);
      const placed = e instanceof ApiError && (e.status === 400 || e.status === 409)
        && (field !== 'stream' || $('stream-new-id').value.trim() === stream)
        && showFieldError(field, message, targets);
      if (!placed) {
        showBanner(`Not saved: ${describe(e)}`);
      }
    } finally {
      $('save').disabled = false;
    }
  }

  // ---------------------------------------------------------------- send test event

  function closeTest() {
    $('test-event').hidden = true;
    $('test-toggle').setAttribute('aria-expanded', 'false');
  }

  function openTest() {
    $('test-event').hidden = false;
    $('test-toggle').setAttribute('aria-expanded', 'true');
    if (state.editing) setStatus('You have unsaved changes: the test event uses the saved settings.');
    $('send-test').focus();
  }

  const REASONS = {
    200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized',
    403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 413: 'Payload Too Large',
    415: 'Unsupported Media Type', 429: 'Too Many Requests', 500: 'Internal Server Error', 501: 'Not Implemented',
    502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
  };

  /** What the answer means for the admin: [tone, headline, advice]. */
  function explain(r) {
    const hec = r.hec_code === null || r.hec_code === undefined ? '' : ` (HEC code ${r.hec_code}${r.hec_text ? `: ${r.hec_text}` : ''})`;
    if (r.status === null || r.status === undefined) {
      const err = r.error || 'no answer';
      if (/^refused/.test(err)) {
        return ['bad', 'ELS refused to connect to this address.', `${err}. Destinations on loopback, private or metadata addresses are blocked unless the operator allows them (ELS_SSRF_ALLOW).`];
      }
      return ['bad', 'The SIEM did not answer.', `${err}. Check the URL, the host name and that the SIEM is reachable from the consumers; real deliveries would be retried.`];
    }
    const s = r.status;
    if (s >= 200 && s < 300) {
      if (r.hec_code !== null && r.hec_code !== undefined && r.hec_code !== 0) {
        return ['warn', `The SIEM answered ${s} but with a HEC error${hec}.`, 'Check the HEC settings on the Splunk side.'];
      }
      return ['ok', `The SIEM accepted the test event${hec}.`, 'Streaming works with the saved settings.'];
    }
    if (s === 401 || s === 403) {
      return ['bad', `The SIEM rejected the credentials: ${s}${hec}.`,
        'Check the Authorization header value (for Splunk HEC: "Splunk <token>" with an enabled HEC token that may write to the index). Click Edit, type the correct value in place of the stored one, Save, and send again. Real events would be dead-lettered at once (reason "rejected") until this is fixed; replay them afterwards.'];
    }
    if (s === 404) {
      return ['bad', `Nothing at that URL: 404${hec}.`, 'Check the path; for Splunk HEC it is /services/collector/event.'];
    }
    if (s === 400 || s === 413 || s === 415 || s === 422) {
      return ['bad', `The SIEM refused the event data: ${s}${hec}.`, 'Check the custom event body, the custom fields and the HEC index. Real events would be dead-lettered (reason "rejected").'];
    }
    if (s === 408 || s === 429 || (s >= 500 && s !== 501)) {
      return ['warn', `The SIEM is failing or busy: ${s}${hec}.`, 'Real deliveries are retried with backoff, then dead-lettered as "retries_exhausted" if it stays down.'];
    }
    return ['bad', `The SIEM answered ${s}${hec}.`, 'Real events answered like this are dead-lettered at once (reason "rejected").'];
  }

  function renderTestResult(r) {
    const [tone, headline, advice] = explain(r);
    const facts = el('dl', { class: 'facts' });
    const fact = (name, value, attrs) => facts.append(el('dt', { text: name }), el('dd', attrs || {}, value));
    fact('Status', r.status === null || r.status === undefined ? 'no answer' : `${r.status} ${REASONS[r.status] || ''}`.trim(), { 'data-test': 'status' });
    if (r.hec_code !== null && r.hec_code !== undefined) fact('HEC', `code ${r.hec_code}${r.hec_text ? ` — ${r.hec_text}` : ''}`, { 'data-test': 'hec' });
    fact('Latency', `${r.latency_ms} ms`, { 'data-test': 'latency' });
    if (r.error) fact('Error', r.error, { 'data-test': 'error' });
    const parts = [
      el('div', { class: `verdict ${tone}`, 'data-test': 'verdict', 'data-tone': tone }, headline, el('p', { text: advice })),
      facts,
    ];
    const headerNames = Object.keys(r.headers || {});
    if (headerNames.length) {
      const body = el('tbody');
      for (const name of headerNames) body.append(el('tr', {}, el('td', { class: 'mono', text: name }), el('td', { class: 'mono', text: r.headers[name] })));
      parts.push(el('table', { class: 'table', 'data-test': 'headers' },
        el('caption', { text: 'Response headers' }),
        el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Name' }), el('th', { scope: 'col', text: 'Value' }))),
        body));
    }
    parts.push(el('h3', { text: 'Response body' }), el('pre', { class: 'body', 'data-test': 'body', tabindex: '0', text: r.body || '(empty)' }));
    $('test-result').replaceChildren(...parts);
  }

  async function sendTest() {
    const button = $('send-test');
    button.disabled = true;
    $('test-result').replaceChildren(el('p', { class: 'note', text: 'Sending…' }));
    const org = state.org;
    const stream = state.streamId;
    try {
      const { data } = await api('POST', streamPath(org, stream, 'test'), {});
      if (org !== state.org || stream !== state.streamId) return;
      renderTestResult(data);
      $('test-result').dataset.stream = stream;
      const sent = stream === DEFAULT_STREAM ? 'Test event sent' : `Test event sent through stream ${stream}`;
      setStatus(`${sent}: ${explain(data)[1]}`, explain(data)[0] === 'ok');
    } catch (e) {
      if (e.signedOut) return;
      const hint = e instanceof ApiError && e.status === 404 ? ' Save the settings first.' : '';
      $('test-result').replaceChildren(el('div', { class: 'verdict bad', 'data-test': 'verdict', 'data-tone': 'bad' }, `Could not send: ${describe(e)}.${hint}`));
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- dead letters

  /** An RFC 3339 time as `2026-11-25 01:02:03 UTC` (as given when it does not parse). */
  function when(rfc3339) {
    const t = new Date(rfc3339);
    return Number.isNaN(t.getTime()) ? String(rfc3339) : `${t.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  }

  function renderDeadLetters(summary) {
    state.deadLetters = summary.count;
    $('dlq-count').textContent = String(summary.count);
    $('dlq-count-label').textContent = `dead letter${summary.count === 1 ? '' : 's'} for ${summary.org}`;
    const rows = Object.entries(summary.by_reason || {});
    const body = $('dlq-reason-rows');
    body.replaceChildren();
    if (rows.length === 0) {
      body.append(el('tr', {}, el('td', { colspan: '2', class: 'rows-empty', text: 'none' })));
    }
    for (const [reason, count] of rows) {
      body.append(el('tr', { 'data-reason': reason }, el('td', { class: 'mono', text: reason }), el('td', { class: 'num', text: String(count) })));
    }
    const latest = summary.latest;
    const note = $('dlq-latest');
    if (latest) {
      const status = latest.last_status ? `status ${latest.last_status}` : 'no answer';
      note.textContent = `Latest: ${latest.reason} at ${when(latest.last_failed_at)} after ${latest.attempts} attempt${latest.attempts === 1 ? '' : 's'}, ${status}${latest.last_error ? `: ${latest.last_error}` : ''}`;
      note.hidden = false;
    } else {
      note.hidden = true;
    }
    $('dlq-replay').disabled = state.replaying || summary.count === 0;
  }

  async function refreshDeadLetters() {
    const org = state.org;
    if (!org) return;
    try {
      const { data } = await api('GET', `console/api/dead-letters?org=${encodeURIComponent(org)}`);
      if (org === state.org) renderDeadLetters(data);
    } catch (e) {
      if (e.signedOut) return;
      $('dlq-result').textContent = `Could not read the dead letters: ${describe(e)}`;
      $('dlq-result').className = 'bad';
    }
  }

  /**
   * Replay the org's dead letters in chunks (the API's `limit`), so the page can show progress
   * and the count dropping. Bounded by the count at the start: records that fail again while
   * we replay are left for another click.
   */
  async function replay() {
    const org = state.org;
    await refreshDeadLetters();
    const total = state.deadLetters;
    if (!org || total === 0 || state.replaying) return;
    state.replaying = true;
    const button = $('dlq-replay');
    button.disabled = true;
    const result = $('dlq-result');
    result.className = '';
    const progress = $('dlq-progress');
    progress.max = total;
    progress.value = 0;
    $('dlq-progress-box').hidden = false;
    const chunk = Math.max(1, Math.min(500, Math.ceil(total / 10)));
    let replayed = 0;
    let failed = 0;
    let lastError = null;
    try {
      while (replayed + failed < total && org === state.org) {
        const limit = Math.min(chunk, total - replayed - failed);
        result.textContent = `Replaying… ${replayed} of ${total} replayed`;
        const { data } = await api('POST', 'v1/dead-letters/replay', { org, limit }, { timeoutMs: REPLAY_TIMEOUT_MS, accept: [502] });
        replayed += data.replayed || 0;
        failed += data.failed || 0;
        if (data.last_error) lastError = data.last_error;
        progress.value = replayed;
        await refreshDeadLetters();
        if (!data.matched || data.failed) break;
      }
      const left = state.deadLetters;
      if (failed) {
        result.textContent = `Replayed ${replayed} of ${total}; ${failed} failed${lastError ? ` (${lastError})` : ''}. ${left} left.`;
        result.className = 'bad';
      } else {
        result.textContent = `Replayed ${replayed} of ${total}. ${left} dead letter${left === 1 ? '' : 's'} left for ${org}.`;
        result.className = 'ok';
      }
    } catch (e) {
      if (e.signedOut) return;
      result.textContent = `Replay stopped after ${replayed} of ${total}: ${describe(e)}`;
      result.className = 'bad';
    } finally {
      state.replaying = false;
      button.disabled = state.deadLetters === 0;
    }
  }

  // ---------------------------------------------------------------- stream health

  /** The stream states of the admin API, most in need of attention first (the state sort). */
  const STATES = ['paused', 'probing', 'failing', 'paused_by_user', 'disabled', 'active'];
  const STATE_LABELS = {
    active: 'active', failing: 'failing', paused: 'paused', probing: 'probing',
    paused_by_user: 'paused by user', disabled: 'disabled',
  };
  const STATE_HELP = {
    active: 'Events flow to the SIEM.',
    failing: 'The SIEM answers with transient errors; deliveries are being retried.',
    paused: 'ELS paused the stream: its events are held on disk and one probe goes out now and then. Fix the settings (saving resumes it) or resume it.',
    probing: 'Paused, with a probe on its way to the SIEM.',
    paused_by_user: 'Paused on purpose: its events are held until someone resumes it.',
    disabled: 'Streaming is switched off in the settings; events are not sent.',
  };
  /** Pause for these, Resume for those; neither for a disabled stream. */
  const PAUSABLE = ['active', 'failing'];
  const RESUMABLE = ['paused', 'paused_by_user', 'probing'];
  const STATUS_PAGE_LIMIT = 1000;
  /** How often the open org's status panel refreshes itself. */
  const STATUS_REFRESH_MS = 5000;

  /** `3 min ago`, coarsely; empty when the time does not parse. */
  function ago(rfc3339) {
    const t = new Date(rfc3339).getTime();
    if (Number.isNaN(t)) return '';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h ago`;
  }

  /** A <time> with the machine-readable value and `2026-12-01 10:00:00 UTC (3 min ago)`. */
  function timeEl(rfc3339) {
    const relative = ago(rfc3339);
    return el('time', { datetime: rfc3339, text: relative ? `${when(rfc3339)} (${relative})` : when(rfc3339) });
  }

  function stateBadge(s) {
    return el('span', { class: `state-badge state-${s}`, 'data-state': s, text: STATE_LABELS[s] || s });
  }

  /** Why a stream left active: its HTTP status, HEC code and text, each as its own part. */
  function reasonNodes(reason) {
    if (!reason) return ['–'];
    const parts = [];
    if (reason.status !== null && reason.status !== undefined) {
      parts.push(el('span', { class: 'reason-code', 'data-part': 'status', text: `HTTP ${reason.status}` }));
    }
    if (reason.hec_code !== null && reason.hec_code !== undefined) {
      parts.push(el('span', { class: 'reason-code', 'data-part': 'hec', text: `HEC code ${reason.hec_code}` }));
    }
    parts.push(el('span', { 'data-part': 'text', text: reason.text || '' }));
    // Spaces between the parts, so the text reads (and copies) as "HTTP 403 HEC code 4 Invalid token".
    return parts.flatMap((p, i) => (i === 0 ? [p] : [' ', p]));
  }

  const reasonText = (reason) => {
    if (!reason) return '';
    const codes = [];
    if (reason.status !== null && reason.status !== undefined) codes.push(`HTTP ${reason.status}`);
    if (reason.hec_code !== null && reason.hec_code !== undefined) codes.push(`HEC code ${reason.hec_code}`);
    return [codes.join(', '), reason.text || ''].filter(Boolean).join(': ');
  };

  // -------------------------------- the overview page

  /** Every org's stream: all pages of GET v1/status, following `next`. */
  async function loadStreams() {
    const items = [];
    const asked = new Set();
    let after = null;
    let page;
    for (;;) {
      const query = new URLSearchParams({ limit: String(STATUS_PAGE_LIMIT) });
      if (after !== null) query.set('after', after);
      page = (await api('GET', `v1/status?${query}`)).data || {};
      items.push(...(page.items || []));
      if (!page.next || asked.has(page.next)) break;
      asked.add(page.next);
      after = page.next;
    }
    state.streams = items;
    state.byState = page.by_state || {};
  }

  function sortValue(s, key) {
    switch (key) {
      case 'state': return STATES.indexOf(s.state);
      case 'since': return new Date(s.since).getTime() || 0;
      case 'held': return Number(s.held_events) || 0;
      default: return s.org;
    }
  }

  function shownStreams() {
    const wantState = $('filter-state').value;
    const text = $('filter-org').value.trim().toLowerCase();
    const { key, dir } = state.sort;
    return state.streams
      .filter((s) => (!wantState || s.state === wantState) && (!text || s.org.toLowerCase().includes(text)))
      .sort((a, b) => {
        const x = sortValue(a, key);
        const y = sortValue(b, key);
        if (x < y) return -dir;
        if (x > y) return dir;
        if (a.org !== b.org) return a.org < b.org ? -1 : 1;
        const sa = a.stream || DEFAULT_STREAM;
        const sb = b.stream || DEFAULT_STREAM;
        return sa < sb ? -1 : sa > sb ? 1 : 0;
      });
  }

  function renderOverview() {
    const rows = shownStreams();
    const body = $('overview-rows');
    body.replaceChildren();
    for (const s of rows) {
      const stream = s.stream || DEFAULT_STREAM;
      body.append(el('tr', { 'data-org': s.org, 'data-stream': stream, 'data-state': s.state },
        el('td', {}, el('a', { href: orgHash(s.org, stream), class: 'mono', text: s.org })),
        el('td', { class: 'mono', 'data-test': 'stream', text: stream }),
        el('td', {}, stateBadge(s.state)),
        el('td', {}, timeEl(s.since)),
        el('td', { 'data-test': 'reason' }, ...(s.reason ? reasonNodes(s.reason) : ['–'])),
        el('td', { class: 'num', text: String(s.held_events) }),
        el('td', { class: 'num', text: String(s.delivered_last_hour) }),
        el('td', { class: 'num', text: String(s.failed_last_hour) })));
    }
    $('overview-empty').hidden = rows.length > 0 || state.streams.length === 0;
    // The order is told by aria-sort; the arrow is for the eye only (out of the button's name).
    for (const th of document.querySelectorAll('#overview-table th[data-sort]')) {
      const sorted = th.dataset.sort === state.sort.key;
      if (sorted) th.setAttribute('aria-sort', state.sort.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
      const button = th.querySelector('button');
      let mark = button.querySelector('.sort-mark');
      if (!mark) {
        mark = el('span', { class: 'sort-mark', 'aria-hidden': 'true' });
        button.append(mark);
      }
      mark.textContent = !sorted ? '↕' : state.sort.dir > 0 ? '▲' : '▼';
    }
    const total = state.streams.length;
    const counts = STATES.filter((k) => state.byState[k]).map((k) => `${state.byState[k]} ${STATE_LABELS[k]}`);
    const filtered = rows.length === total ? '' : ` Showing ${rows.length} of ${total}.`;
    $('overview-summary').textContent = total === 0
      ? 'No streams yet: ELS lists an org once it has settings or events.'
      : `${total} stream${total === 1 ? '' : 's'}${counts.length ? `: ${counts.join(', ')}` : ''}.${filtered}`;
    $('overview-caption').textContent = `Streams, sorted by ${state.sort.key} (${state.sort.dir > 0 ? 'ascending' : 'descending'})`;
  }

  async function refreshOverview() {
    $('overview-refresh').disabled = true;
    try {
      await loadStreams();
      renderOverview();
      setStatus(`Stream health as of ${when(new Date().toISOString())}.`, true);
    } catch (e) {
      if (e.signedOut) return;
      showBanner(`Could not read the stream states: ${describe(e)}`);
      setStatus('');
    } finally {
      $('overview-refresh').disabled = false;
    }
  }

  // -------------------------------- pages (hash routes)

  const ORG_PAGE = ['orgs', 'org-streams', 'stream', 'settings', 'test-event', 'dlq'];

  function setPage(page) {
    state.page = page;
    $('overview').hidden = page !== 'overview';
    if (page === 'overview') for (const id of ORG_PAGE) $(id).hidden = true;
    else $('orgs').hidden = false;
    $('nav-streams').toggleAttribute('aria-current', false);
    $('nav-org').toggleAttribute('aria-current', false);
    $(page === 'overview' ? 'nav-streams' : 'nav-org').setAttribute('aria-current', 'page');
  }

  /** Show what the address asks for: `#streams`, `#org=ID`, or the org picker. */
  async function route() {
    showBanner('');
    if (location.hash === '#streams') {
      setPage('overview');
      await refreshOverview();
      return;
    }
    setPage('org');
    const wanted = orgFromHash() || (location.hash === '#org' && state.org ? { org: state.org, stream: state.streamId } : null);
    if (wanted) {
      await openOrg(wanted.org, wanted.stream);
    } else {
      setStatus('Signed in. Pick an org, or type another org id.', true);
      $('org-select').focus();
    }
  }

  // -------------------------------- one org's status panel

  let streamSeq = 0;

  function showStreamButtons(s) {
    $('stream-pause').hidden = !(s && PAUSABLE.includes(s.state));
    $('stream-resume').hidden = !(s && RESUMABLE.includes(s.state));
  }

  function renderStream(s) {
    state.stream = s;
    const badge = $('stream-state');
    badge.className = `state-badge state-${s.state}`;
    badge.dataset.state = s.state;
    badge.textContent = STATE_LABELS[s.state] || s.state;
    $('stream-state-help').textContent = STATE_HELP[s.state] || '';
    $('stream-since').replaceChildren(timeEl(s.since));
    $('stream-reason').replaceChildren(...reasonNodes(s.reason));
    $('stream-last-success').replaceChildren(s.last_success ? timeEl(s.last_success) : 'none seen by this consumer');
    $('stream-held').textContent = `${s.held_events} (${s.held_bytes} bytes)`;
    $('stream-delivered').textContent = String(s.delivered_last_hour);
    $('stream-failed').textContent = String(s.failed_last_hour);
    showStreamButtons(s);
  }

  function clearStream(message) {
    state.stream = null;
    const badge = $('stream-state');
    badge.className = 'state-badge';
    delete badge.dataset.state;
    badge.textContent = '–';
    $('stream-state-help').textContent = message || '';
    for (const id of ['stream-since', 'stream-reason', 'stream-last-success', 'stream-held', 'stream-delivered', 'stream-failed']) $(id).textContent = '–';
    $('stream-notices').hidden = true;
    showStreamButtons(null);
  }

  function renderNotices(list) {
    const items = (list && list.items) || [];
    const body = $('stream-notice-rows');
    body.replaceChildren();
    for (const n of items.slice().reverse()) {
      body.append(el('tr', {},
        el('td', {}, timeEl(n.at)),
        el('td', {}, stateBadge(n.from)),
        el('td', {}, stateBadge(n.to)),
        el('td', { text: reasonText(n.reason) || '–' })));
    }
    $('stream-notices').hidden = items.length === 0;
  }

  /** Read the open org's status (and recent notices); `quiet` for the periodic refresh. */
  async function refreshStream(quiet) {
    const org = state.org;
    const stream = state.streamId;
    if (!org) return;
    streamSeq += 1;
    const seq = streamSeq;
    const current = () => seq === streamSeq && org === state.org && stream === state.streamId;
    try {
      const [status, notices] = await Promise.all([
        api('GET', streamPath(org, stream, 'status')),
        api('GET', `${orgPath(org, 'stream-events')}?limit=50`).catch((e) => {
          if (e.signedOut) throw e;
          return { data: null };
        }),
      ]);
      if (!current()) return;
      renderStream(status.data);
      // The org's notices cover all its streams: this stream's latest five.
      const items = ((notices.data && notices.data.items) || []).filter((n) => (n.stream || DEFAULT_STREAM) === stream);
      renderNotices({ items: items.slice(-5) });
      if (!quiet) $('stream-result').textContent = '';
    } catch (e) {
      if (e.signedOut || !current()) return;
      if (e instanceof ApiError && e.status === 404) {
        clearStream(stream === DEFAULT_STREAM
          ? `ELS has no stream for ${org} yet: it has seen no events for it.`
          : `Stream ${stream} of ${org} is not saved yet.`);
      } else if (!quiet) {
        clearStream('');
        $('stream-result').textContent = `Could not read the stream status: ${describe(e)}`;
        $('stream-result').className = 'bad';
      }
    }
  }

  async function streamAction(action) {
    const org = state.org;
    const stream = state.streamId;
    if (!org) return;
    const buttons = [$('stream-pause'), $('stream-resume')];
    for (const b of buttons) b.disabled = true;
    streamSeq += 1; // a refresh already on its way must not overwrite the answer
    const result = $('stream-result');
    result.className = '';
    result.textContent = action === 'pause' ? 'Pausing…' : 'Resuming…';
    try {
      const { data } = await api('POST', streamPath(org, stream, action), {});
      if (org !== state.org || stream !== state.streamId) return;
      renderStream(data);
      const now = STATE_LABELS[data.state] || data.state;
      const label = streamLabel(org, stream);
      result.textContent = action === 'pause'
        ? `Paused ${label}: its events are held until you resume it.`
        : `Resumed ${label}: the stream is ${now}.`;
      refreshStreamList(true);
      result.className = 'ok';
      setStatus(result.textContent, true);
      // The clicked button is gone now: keep the keyboard focus on its counterpart.
      for (const b of buttons) b.disabled = false;
      const next = action === 'pause' ? $('stream-resume') : $('stream-pause');
      (next.hidden ? $('stream-refresh') : next).focus();
      refreshStream(true);
    } catch (e) {
      if (e.signedOut) return;
      result.textContent = `Could not ${action} ${streamLabel(org, stream)}: ${describe(e)}`;
      result.className = 'bad';
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  function startStreamTimer() {
    stopStreamTimer();
    state.streamTimer = setInterval(() => {
      if (document.hidden || state.page !== 'org' || !state.org || $('stream').hidden) return;
      refreshStream(true);
      refreshStreamList(true);
    }, STATUS_REFRESH_MS);
  }

  function stopStreamTimer() {
    if (state.streamTimer) clearInterval(state.streamTimer);
    state.streamTimer = null;
  }

  // ---------------------------------------------------------------- wiring

  function wire() {
    $('login-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors();
      const token = $('token').value.trim();
      if (!token) {
        showFieldError('token', 'Type the admin token.', {});
        return;
      }
      $('sign-in').disabled = true;
      setStatus('Signing in…');
      try {
        await signIn(token);
      } catch (e) {
        setStatus('');
        const message = e instanceof ApiError && e.status === 401
          ? 'That token was refused (401): use ELS_ADMIN_TOKEN or a token from elsctl tokens create.'
          : `Cannot sign in: ${describe(e)}`;
        showFieldError('token', message, {});
      } finally {
        $('sign-in').disabled = false;
      }
    });
    $('sign-out').addEventListener('click', () => signOut('Signed out.'));

    $('org-pick-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const org = $('org-select').value;
      if (org) openOrg(org);
    });
    $('org-new-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const org = $('org-new').value.trim();
      if (!org) {
        $('org-new').focus();
        return;
      }
      $('org-new').value = '';
      openOrg(org);
    });

    $('edit').addEventListener('click', () => {
      setEditing(true);
      $('enabled').focus();
    });
    $('cancel').addEventListener('click', () => {
      clearErrors();
      fillForm(state.saved);
      setEditing(false);
      setStatus('Changes discarded.');
      $('edit').focus();
    });
    $('settings-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (state.editing) save();
    });

    $('ev-all').addEventListener('change', syncEventChecks);
    $('default-body').addEventListener('change', syncBody);
    $('limit-on').addEventListener('change', syncLimit);

    $('add-auth').addEventListener('click', () => makeRow('auth', $('auth-rows'), null).querySelector('input').focus());
    $('add-custom-header').addEventListener('click', () => makeRow('header', $('custom-header-rows'), null).querySelector('input').focus());
    $('add-custom-field').addEventListener('click', () => makeRow('field', $('custom-field-rows'), null).querySelector('input').focus());

    const addTypedFlow = () => {
      const input = $('flow-new');
      if (addFlow(input.value)) input.value = '';
      input.focus();
    };
    $('add-flow').addEventListener('click', addTypedFlow);
    $('flow-new').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault(); // add the flow rather than submit the form
        addTypedFlow();
      }
    });

    $('test-toggle').addEventListener('click', () => {
      if ($('test-event').hidden) openTest();
      else closeTest();
    });
    $('endpoint').addEventListener('change', syncEndpoint);
    $('http-format').addEventListener('change', syncEndpoint);
    $('oauth2-on').addEventListener('change', syncEndpoint);
    $('stream-add-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      addStream();
    });
    $('streams-refresh').addEventListener('click', async () => {
      await refreshStreamList();
      setStatus(`Streams of ${state.org} refreshed.`, true);
    });
    $('send-test').addEventListener('click', sendTest);

    $('dlq-refresh').addEventListener('click', async () => {
      $('dlq-result').textContent = '';
      await refreshDeadLetters();
      setStatus('Dead letters refreshed.', true);
    });
    $('dlq-replay').addEventListener('click', replay);

    window.addEventListener('hashchange', () => {
      if (!$('app').hidden) route();
    });
    $('overview-refresh').addEventListener('click', refreshOverview);
    $('filter-state').addEventListener('change', renderOverview);
    $('filter-org').addEventListener('input', renderOverview);
    $('overview-filters').addEventListener('submit', (ev) => ev.preventDefault());
    $('filter-clear').addEventListener('click', () => {
      $('filter-state').value = '';
      $('filter-org').value = '';
      renderOverview();
      $('filter-state').focus();
    });
    for (const button of document.querySelectorAll('#overview-table button.sort')) {
      button.addEventListener('click', () => {
        const key = button.dataset.sort;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
        renderOverview();
      });
    }
    $('stream-pause').addEventListener('click', () => streamAction('pause'));
    $('stream-resume').addEventListener('click', () => streamAction('resume'));
    $('stream-refresh').addEventListener('click', async () => {
      await refreshStream();
      if (state.stream) setStatus(`Status of ${state.org} refreshed.`, true);
    });
  }

  async function start() {
    wire();
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      $('token').focus();
      return;
    }
    try {
      await signIn(token);
    } catch (e) {
      signOut(e instanceof ApiError && e.status === 401 ? 'The stored admin token was refused. Sign in again.' : `Cannot reach the admin API: ${describe(e)}`);
    }
  }

  document.addEventListener('DOMContentLoaded', start);
})();
