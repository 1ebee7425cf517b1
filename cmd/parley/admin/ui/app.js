// parley's dashboard: it reads GET /api/events (server-sent events, one
// "snapshot" event whenever something changed) and renders it. Hang-up and
// kick go to the admin API with the admin token kept in localStorage.
// Everything from the server is set as text, never as HTML: a contact or a
// user agent comes from the network.
'use strict';

const TOKEN_KEY = 'parley.admin.token';
// A stream that has been silent this long is dead even if the browser has
// not noticed: the server sends at least every 10 s.
const STALL_MS = 25000;

const $ = (id) => document.getElementById(id);

let source = null;
let retryTimer = 0;
let backoff = 1000;
let lastEvent = 0;
let skew = 0; // server clock minus the browser's, in ms
let state = null;

// ---- the token ----

function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}

function showToken() {
  const has = token() !== '';
  $('token').value = '';
  $('token').hidden = has;
  document.querySelector('label[for="token"]').hidden = has;
  $('save-token').hidden = has;
  $('forget-token').hidden = !has;
  $('token-state').textContent = has ? 'token set' : 'read-only without it';
  document.body.dataset.token = has ? 'set' : 'none';
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const v = $('token').value.trim();
  if (v === '') return;
  try { localStorage.setItem(TOKEN_KEY, v); } catch (err) { say('The browser does not keep the token: ' + err, true); }
  showToken();
  say('Admin token saved in this browser.');
});

$('forget-token').addEventListener('click', () => {
  try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
  showToken();
  say('Admin token forgotten: hang-up and kick need it again.');
});

// ---- messages ----

function say(text, error) {
  const m = $('message');
  m.textContent = text;
  m.className = error ? 'error' : '';
  m.hidden = false;
}

// act sends a state-changing request and says how it went.
async function act(method, path, what) {
  const headers = {};
  const t = token();
  if (t) headers['Authorization'] = 'Bearer ' + t;
  let res;
  try {
    res = await fetch(path, { method, headers, cache: 'no-store' });
  } catch (e) {
    say(what + ': parley did not answer (' + e + ')', true);
    return;
  }
  if (res.ok) {
    say(what + ': done.');
    return;
  }
  let detail = '';
  try { detail = (await res.json()).error || ''; } catch (e) { /* not JSON */ }
  let text = what + ': ' + res.status + ' ' + res.statusText + (detail ? ' (' + detail + ')' : '');
  if (res.status === 401) {
    text = what + ': 401 Unauthorized. ' + (t ? 'The admin token is wrong; set the right one above.' : 'Set the admin token above.') + (detail ? ' (' + detail + ')' : '');
  }
  say(text, true);
}

// ---- the live feed ----

function setStatus(s, text) {
  const el = $('status');
  el.dataset.state = s;
  el.textContent = text || s;
}

function connect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  setStatus(state ? 'reconnecting' : 'connecting', state ? 'reconnecting…' : 'connecting…');
  const es = new EventSource('/api/events');
  source = es;
  lastEvent = Date.now();
  es.addEventListener('snapshot', (e) => {
    if (es !== source) return;
    lastEvent = Date.now();
    backoff = 1000;
    let st;
    try { st = JSON.parse(e.data); } catch (err) { return; }
    setStatus('live');
    render(st);
  });
  es.addEventListener('error', () => {
    if (es !== source) return;
    setStatus('reconnecting', 'reconnecting…');
    // EventSource retries by itself after a dropped connection, but gives
    // up for good on an answer that is not a stream (a 503 while parley
    // starts, or a proxy's error page): then start over, more slowly.
    if (es.readyState === EventSource.CLOSED) retry();
  });
}

function retry() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, backoff);
  backoff = Math.min(backoff * 2, 10000);
}

setInterval(() => {
  if (source && Date.now() - lastEvent > STALL_MS) {
    setStatus('reconnecting', 'reconnecting…');
    connect();
  }
  tick();
}, 1000);

// ---- rendering ----

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// sync makes tbody hold one row per item, in order: rows are kept by key
// and updated in place, so that a button is not replaced under the pointer
// between two events.
function sync(tbody, items, key, build, update) {
  const old = new Map();
  for (const tr of tbody.rows) old.set(tr.dataset.key, tr);
  let i = 0;
  for (const it of items) {
    const k = key(it);
    let tr = old.get(k);
    if (tr) {
      old.delete(k);
    } else {
      tr = build(it);
      tr.dataset.key = k;
    }
    update(tr, it);
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
    i++;
  }
  for (const tr of old.values()) tr.remove();
}

function cells(tr, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(tr.appendChild(el('td')));
  return out;
}

function set(td, text, cls) {
  text = String(text);
  if (td.textContent !== text) td.textContent = text;
  if (cls !== undefined && td.className !== cls) td.className = cls;
}

function duration(ms) {
  if (!(ms >= 0)) return '';
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
  const two = (n) => String(n).padStart(2, '0');
  return (h ? h + ':' + two(m) : m) + ':' + two(r);
}

function ms(ns) {
  if (!ns) return '';
  const v = ns / 1e6;
  return (v < 10 ? v.toFixed(1) : v.toFixed(0)) + ' ms';
}

function count(id, shown, total) {
  $(id + '-count').textContent = total > shown ? '(' + shown + ' of ' + total + ')' : '(' + total + ')';
  $(id + '-empty').hidden = total > 0;
}

function now() { return Date.now() + skew; }

function render(st) {
  state = st;
  const t = Date.parse(st.time);
  if (!isNaN(t)) skew = t - Date.now();
  renderCalls(st.calls || [], st.calls_total || 0);
  renderRegistrations(st.registrations || [], st.registrations_total || 0);
  renderRooms(st.rooms);
  tick();
}

function renderCalls(calls, total) {
  count('calls', calls.length, total);
  sync($('calls').tBodies[0], calls, (c) => c.id, (c) => {
    const tr = el('tr');
    const td = cells(tr, 9);
    td.forEach((d, i) => { if (i >= 5) d.className = 'num'; });
    const cell = tr.appendChild(el('td', 'act'));
    const b = cell.appendChild(el('button', 'danger hangup', 'Hang up'));
    b.type = 'button';
    b.addEventListener('click', () => hangup(tr.dataset.callId, tr.dataset.label));
    return tr;
  }, (tr, c) => {
    tr.dataset.callId = c.id;
    tr.dataset.from = c.from;
    tr.dataset.to = c.to;
    tr.dataset.state = c.state;
    tr.dataset.since = c.answer || c.start || '';
    tr.dataset.label = c.from + ' → ' + c.to;
    const td = tr.cells;
    const m = c.media || null;
    set(td[0], c.from);
    set(td[1], c.to);
    set(td[2], c.state, 'state-' + c.state);
    set(td[3], c.legs ? c.legs.caller + ' / ' + c.legs.callee : '');
    set(td[4], m && m.codec ? m.codec : '');
    set(td[6], m ? m.packets : '');
    let loss = '';
    if (m && m.packets + m.lost > 0) loss = (100 * m.lost / (m.packets + m.lost)).toFixed(1) + ' %';
    set(td[7], loss, 'num' + (m && m.lost > 0 ? ' bad' : ''));
    set(td[8], m ? ms(m.jitter_ns) || '0 ms' : '');
  });
}

function hangup(id, label) {
  act('DELETE', '/api/calls/' + encodeURIComponent(id), 'Hang up ' + label);
}

function renderRegistrations(regs, total) {
  count('registrations', regs.length, total);
  const first = new Set();
  sync($('registrations').tBodies[0], regs, (r) => r.user + '\n' + r.contact, () => {
    const tr = el('tr');
    const td = cells(tr, 6);
    td[1].className = 'wrap';
    td[4].className = td[5].className = 'num';
    tr.appendChild(el('td', 'act'));
    return tr;
  }, (tr, r) => {
    tr.dataset.user = r.user;
    tr.dataset.expires = r.expires || '';
    const td = tr.cells;
    set(td[0], r.user);
    set(td[1], r.contact);
    set(td[2], r.transport);
    set(td[3], r.reachable, 'reach-' + r.reachable);
    set(td[4], ms(r.rtt_ns));
    // One kick button per user, on the user's first binding.
    const cell = td[6];
    const want = !first.has(r.user);
    first.add(r.user);
    const b = cell.querySelector('button');
    if (want && !b) {
      const nb = cell.appendChild(el('button', 'danger kick', 'Kick'));
      nb.type = 'button';
      nb.title = 'End the user\'s calls and remove its registrations';
      nb.addEventListener('click', () => act('POST', '/api/users/' + encodeURIComponent(tr.dataset.user) + '/kick', 'Kick ' + tr.dataset.user));
    } else if (!want && b) {
      b.remove();
    }
  });
}

function renderRooms(rooms) {
  // rooms is absent when parley answers GET /api/rooms with 404: no rooms
  // service, no section.
  const section = $('rooms-section');
  if (!Array.isArray(rooms)) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  count('rooms', rooms.length, rooms.length);
  sync($('rooms').tBodies[0], rooms, (r) => String(r.number), () => {
    const tr = el('tr');
    const td = cells(tr, 5);
    td[2].className = 'wrap';
    return tr;
  }, (tr, r) => {
    const td = tr.cells;
    set(td[0], r.number);
    set(td[1], r.mode || '');
    td[2].replaceChildren(...(r.members || []).map((m) => {
      let cls = 'member';
      if (m.talking) cls += ' talking';
      if (m.muted) cls += ' muted';
      const s = el('span', cls, m.user + (m.muted ? ' (muted)' : ''));
      if (m.talking) s.title = 'talking';
      return s;
    }));
    set(td[3], r.floor || '');
    set(td[4], (r.queue || []).join(', '));
  });
}

// tick updates what changes with the clock alone: durations and expiries.
function tick() {
  const n = now();
  const c = new Date(n);
  $('clock').textContent = state ? c.toLocaleTimeString() : '';
  for (const tr of $('calls').tBodies[0].rows) {
    const since = Date.parse(tr.dataset.since);
    set(tr.cells[5], isNaN(since) ? '' : duration(n - since));
  }
  for (const tr of $('registrations').tBodies[0].rows) {
    const exp = Date.parse(tr.dataset.expires);
    set(tr.cells[5], isNaN(exp) ? '' : duration(exp - n));
  }
}

showToken();
connect();
