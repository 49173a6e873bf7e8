// Unit tests of wsgate.js's pure logic: backoff and jitter, the close-code
// policy, ids and ack bookkeeping, rejoin. A fake WebSocket class stands in
// for the browser's; e2e/chat.e2e.test.mjs drives the real thing in
// Chromium against the real server. Run: node --test web/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BEARER_PREFIX,
  CloseCode,
  ErrorCode,
  MAX_ID,
  SUBPROTOCOL,
  WsgateClient,
  WsgateError,
  backoffDelay,
  backoffWindow,
  encodeFrame,
  nextId,
  reconnectPolicy,
  resolveURL,
  validEventName,
  validRoomName,
} from './wsgate.js';

const URL_ = 'ws://127.0.0.1:1/ws';
const WAIT_MS = 2000; // bound of every wait in these tests

// --- a fake WebSocket -------------------------------------------------------

class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.protocol = '';
    /** @type {object[]} frames the client sent, decoded */
    this.sent = [];
    this.closedWith = null;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    FakeWebSocket.instances.push(this);
    for (const fn of FakeWebSocket.onCreate.splice(0)) fn(this);
  }

  send(text) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new Error(`InvalidAccessError: close code ${code}`);
    }
    if (this.readyState >= 2) return;
    const wasOpen = this.readyState === 1;
    this.readyState = 2;
    this.closedWith = { code, reason };
    queueMicrotask(() => this.#closed(wasOpen ? code ?? 1005 : 1006, reason ?? ''));
  }

  // Server side.
  open(protocol = SUBPROTOCOL) {
    this.readyState = 1;
    this.protocol = protocol;
    this.onopen?.({});
  }

  receive(frame) {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  welcome(userId = 'alice') {
    this.open();
    this.receive({ type: 'welcome', data: { connectionId: `c${FakeWebSocket.instances.length}`, userId, expiresAt: 0, heartbeatMs: 25000 } });
  }

  serverClose(code, reason = '') {
    if (this.readyState === 3) return;
    this.#closed(code, reason);
  }

  #closed(code, reason) {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  /** The first frame the client sent that matches, waiting for it. */
  async nextSent(match = () => true) {
    return until(() => this.sent.find(match), 'a frame from the client');
  }
}
FakeWebSocket.instances = [];
FakeWebSocket.onCreate = [];

function fresh() {
  FakeWebSocket.instances = [];
  FakeWebSocket.onCreate = [];
}

/** Polls cond until it returns something truthy, within WAIT_MS. */
async function until(cond, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The n-th socket the client opened (from 0), waiting for it. */
function socket(n) {
  return until(() => FakeWebSocket.instances[n], `WebSocket #${n}`);
}

/** A client on the fake WebSocket with fast backoff, recording its states. */
function newClient(opts = {}) {
  fresh();
  const states = [];
  const events = [];
  const errors = [];
  const client = new WsgateClient(URL_, {
    WebSocket: FakeWebSocket,
    backoff: { minMs: 1, maxMs: 4 },
    ackTimeoutMs: 500,
    dialTimeoutMs: 500,
    onState: (s) => states.push(s),
    onEvent: (e) => events.push(e),
    onError: (e) => errors.push(e),
    ...opts,
  });
  return { client, states, events, errors };
}

async function connected(opts) {
  const env = newClient(opts);
  const ready = env.client.connect();
  const ws = await socket(0);
  ws.welcome();
  await ready;
  return { ...env, ws };
}

/** Answers the client's join of each room with an ack. */
async function ackJoins(ws, rooms) {
  for (const room of rooms) {
    const f = await ws.nextSent((x) => x.type === 'join' && x.room === room);
    ws.receive({ type: 'ack', id: f.id });
  }
}

// --- backoff ------------------------------------------------------------------

const B = { minMs: 500, maxMs: 30000, multiplier: 2 };

test('backoff window grows exponentially to the cap', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffWindow(n, B)), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(backoffWindow(10_000, B), 30000, 'overflow to Infinity is capped');
  assert.equal(backoffWindow(3, { minMs: 100, maxMs: 1000, multiplier: 1 }), 100, 'multiplier 1 is constant');
});

test('full jitter: uniform in [0, window), integer milliseconds', () => {
  assert.equal(backoffDelay(3, B, () => 0), 0);
  assert.equal(backoffDelay(3, B, () => 0.5), 2000);
  assert.equal(backoffDelay(3, B, () => 0.9999999999), 3999, 'never reaches the window');
  assert.equal(backoffDelay(0, { minMs: 0, maxMs: 0, multiplier: 2 }), 0);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < 2000; i++) {
    const d = backoffDelay(4, B);
    assert.ok(Number.isInteger(d) && d >= 0 && d < 8000, `delay ${d}`);
    lo = Math.min(lo, d);
    hi = Math.max(hi, d);
  }
  // Spread over the whole window, not clustered at its end (no floor).
  assert.ok(lo < 800 && hi > 7200, `range [${lo}, ${hi}]`);
});

// --- close-code policy --------------------------------------------------------

test('reconnect policy follows the close-code table of docs/PROTOCOL.md', () => {
  const table = {
    1000: ['backoff', 0],
    1001: ['backoff', 0],
    1003: ['stop', 0],
    1006: ['backoff', 0],
    1007: ['stop', 0],
    1008: ['backoff', 10000],
    1009: ['stop', 0],
    1011: ['backoff', 0],
    1012: ['restart', 0],
    1013: ['backoff', 0],
    4001: ['credential', 0],
    4002: ['idle', 0],
    4003: ['credential', 0],
    4008: ['backoff', 0],
    4029: ['backoff', 30000],
  };
  for (const [code, [action, floorMs]] of Object.entries(table)) {
    assert.deepEqual(reconnectPolicy(Number(code)), { action, floorMs }, `close code ${code}`);
  }
});

// --- ids, names, frames ---------------------------------------------------------

test('ids count from 1 and wrap below 2^53', () => {
  assert.equal(MAX_ID, 2 ** 53 - 1);
  assert.equal(nextId(0), 1);
  assert.equal(nextId(41), 42);
  assert.equal(nextId(MAX_ID - 1), MAX_ID);
  assert.equal(nextId(MAX_ID), 1);
  assert.equal(nextId(NaN), 1);
  assert.ok(nextId(MAX_ID - 1) < 2 ** 53);
});

test('names and frames', () => {
  assert.ok(validEventName('message:send'));
  assert.ok(!validEventName(''));
  assert.ok(!validEventName('a'.repeat(65)));
  assert.ok(!validEventName('bad name'));
  assert.ok(validRoomName('conversation:6f1c2a7e-3b4d-4c5e-8f90-a1b2c3d4e5f6'));
  assert.ok(validRoomName('global'));
  assert.ok(!validRoomName('Conversation:1'));
  assert.ok(!validRoomName('a:b:c'));
  assert.ok(!validRoomName(`k${'x'.repeat(31)}:${'y'.repeat(96)}`), 'over 128 characters');
  assert.ok(validRoomName('user:auth0%7C507f1f77bcf86cd799439011'), 'an escaped id');
  assert.ok(validRoomName('user:a%3Ab%2Fc%20d'), 'escaped colon, slash, space');
  assert.ok(!validRoomName('user:auth0%7c1'), 'lower-case hex');
  assert.ok(!validRoomName('user:%41'), 'a byte that stands for itself is not escaped');
  assert.ok(!validRoomName('user:%7'), 'a short escape');
  assert.ok(!validRoomName('user:a|b'), 'an unescaped byte');
  assert.equal(encodeFrame({ type: 'event', event: 'e', data: '{"a":1}' }, 7), '{"type":"event","id":7,"event":"e","data":{"a":1}}');
  assert.equal(encodeFrame({ type: 'join', room: 'r' }), '{"type":"join","room":"r"}');
  assert.equal(resolveURL('http://h:1/ws#x'), 'ws://h:1/ws');
  assert.equal(resolveURL('https://h/ws'), 'wss://h/ws');
  assert.throws(() => resolveURL('ftp://h/ws'), (e) => e.code === ErrorCode.INVALID_ARGUMENT);
});

// --- the client on a fake WebSocket ---------------------------------------------

test('dial offers wsgate.v1 and the bearer entry; cookie mode offers no token', async () => {
  let { client, ws } = await connected({ token: 'tok.en.1', protocols: ['x.extra'] });
  assert.deepEqual(ws.protocols, [SUBPROTOCOL, 'x.extra', `${BEARER_PREFIX}tok.en.1`]);
  assert.equal(client.welcome.userId, 'alice');
  client.close();
  ({ client, ws } = await connected());
  assert.deepEqual(ws.protocols, [SUBPROTOCOL]);
  client.close();
});

test('call: unique increasing ids, ack data, error frames, timeout, late answers', async () => {
  const { client, ws, errors } = await connected({ ackTimeoutMs: 100 });
  const p1 = client.call('message:send', { content: 'hi' });
  const p2 = client.call('message:send', { content: 'there' });
  const f1 = await ws.nextSent((f) => f.data?.content === 'hi');
  const f2 = await ws.nextSent((f) => f.data?.content === 'there');
  assert.equal(f1.type, 'event');
  assert.equal(f1.event, 'message:send');
  assert.ok(Number.isInteger(f1.id) && f2.id > f1.id, `ids ${f1.id}, ${f2.id}`);
  ws.receive({ type: 'error', id: f2.id, code: 'FORBIDDEN', message: 'not a participant' });
  ws.receive({ type: 'ack', id: f1.id, data: { id: 'm1' } });
  assert.deepEqual(await p1, { id: 'm1' });
  await assert.rejects(p2, (e) => e instanceof WsgateError && e.code === 'FORBIDDEN' && e.server && e.message === 'not a participant');

  const p3 = client.call('slow');
  const f3 = await ws.nextSent((f) => f.event === 'slow');
  await assert.rejects(p3, (e) => e.code === ErrorCode.TIMEOUT && !e.server);
  // The late answer is dropped: neither a second settlement nor onError.
  ws.receive({ type: 'ack', id: f3.id });
  ws.receive({ type: 'error', id: f3.id, code: 'INTERNAL', message: 'x' });
  assert.equal(errors.length, 0);

  // An error answering nothing goes to onError.
  ws.receive({ type: 'error', code: 'RATE_LIMITED', message: 'slow down' });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'RATE_LIMITED');

  await assert.rejects(client.call('bad name'), (e) => e.code === ErrorCode.INVALID_ARGUMENT);
  const circular = {};
  circular.self = circular;
  await assert.rejects(client.call('ok', circular), (e) => e.code === ErrorCode.INVALID_ARGUMENT);
  client.close();
});

test('emit sends without an id when connected, returns false otherwise', async () => {
  const { client, ws, events } = await connected();
  assert.equal(client.emit('typing:start', { conversationId: 'c' }), true);
  const f = await ws.nextSent((x) => x.event === 'typing:start');
  assert.equal(f.id, undefined);
  assert.deepEqual(f.data, { conversationId: 'c' });
  ws.receive({ type: 'event', event: 'message:new', room: 'conversation:c', data: { content: 'x' } });
  ws.receive({ type: 'event', event: 'ping' });
  assert.deepEqual(events, [
    { event: 'message:new', room: 'conversation:c', data: { content: 'x' } },
    { event: 'ping', data: undefined },
  ]);
  ws.serverClose(1006);
  assert.equal(client.emit('typing:stop', {}), false);
  assert.throws(() => client.emit(''), (e) => e.code === ErrorCode.INVALID_ARGUMENT);
  client.close();
});

test('a drop fails pending calls; rooms are rejoined before calls resume; leave forgets', async () => {
  const { client, ws, states } = await connected();
  const j1 = client.join('conversation:b');
  const j2 = client.join('conversation:a');
  const j3 = client.join('conversation:x');
  await ackJoins(ws, ['conversation:b', 'conversation:a']);
  const fx = await ws.nextSent((x) => x.room === 'conversation:x');
  ws.receive({ type: 'error', id: fx.id, code: 'FORBIDDEN', message: 'no' });
  await j1;
  await j2;
  await assert.rejects(j3, (e) => e.code === 'FORBIDDEN');
  assert.deepEqual(client.rooms, ['conversation:a', 'conversation:b'], 'refused joins are not remembered');

  const pending = client.call('message:send', { content: 'lost' });
  await ws.nextSent((x) => x.event === 'message:send');
  ws.serverClose(1011, 'internal');
  await assert.rejects(pending, (e) => e.code === ErrorCode.DISCONNECTED && e.closeCode === 1011);
  assert.equal(client.connected, false);

  // While reconnecting, a call waits; it is sent only after the rejoin.
  const waiting = client.call('after', {});
  const ws2 = await socket(1);
  ws2.welcome();
  const r1 = await ws2.nextSent((x) => x.type === 'join');
  assert.equal(r1.room, 'conversation:a', 'rejoined in sorted order');
  assert.ok(!ws2.sent.some((x) => x.event === 'after'), 'no call before the rejoin finished');
  ws2.receive({ type: 'ack', id: r1.id });
  const r2 = await ws2.nextSent((x) => x.type === 'join' && x.room === 'conversation:b');
  ws2.receive({ type: 'error', id: r2.id, code: 'FORBIDDEN', message: 'no longer a participant' });
  const fa = await ws2.nextSent((x) => x.event === 'after');
  assert.ok(fa.id > r2.id, 'ids keep increasing across connections');
  ws2.receive({ type: 'ack', id: fa.id, data: 1 });
  assert.equal(await waiting, 1);
  const last = states.at(-1);
  assert.equal(last.phase, 'connected');
  assert.deepEqual(last.lostRooms, [{ room: 'conversation:b', code: 'FORBIDDEN' }]);
  assert.deepEqual(client.rooms, ['conversation:a']);
  const rec = states.find((s) => s.phase === 'reconnecting');
  assert.equal(rec.code, 1011);
  assert.equal(rec.attempt, 1);

  const l = client.leave('conversation:a');
  assert.deepEqual(client.rooms, [], 'leave forgets at once');
  const fl = await ws2.nextSent((x) => x.type === 'leave');
  ws2.receive({ type: 'ack', id: fl.id });
  await l;
  client.close();
});

test('terminal close codes stop the client; calls then fail with CLOSED', async () => {
  for (const code of [1003, 1007, 1009]) {
    const { client, ws, states } = await connected();
    ws.serverClose(code);
    await until(() => states.at(-1).phase === 'closed', 'closed');
    assert.equal(states.at(-1).code, code);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(FakeWebSocket.instances.length, 1, `no reconnect after ${code}`);
    await assert.rejects(client.call('x'), (e) => e.code === ErrorCode.CLOSED && e.closeCode === code);
  }
});

test('1008 waits at least 10 s; 4029 at least 30 s; 1012 restarts the backoff', async () => {
  for (const [code, floor] of [[1008, 10000], [4029, 30000]]) {
    const { client, ws, states } = await connected();
    ws.serverClose(code);
    const rec = await until(() => states.find((s) => s.phase === 'reconnecting'), 'reconnecting');
    assert.ok(rec.delayMs >= floor && rec.delayMs < floor + 4, `delay ${rec.delayMs} after ${code}`);
    client.close();
    assert.equal(states.at(-1).phase, 'closed');
    assert.equal(FakeWebSocket.instances.length, 1, 'close() cancels the scheduled attempt');
  }
  // Several failures grow the window; 1012 brings it back to [0, minMs).
  const { client, ws, states } = await connected({ backoff: { minMs: 50, maxMs: 1000 }, random: () => 0.999 });
  ws.serverClose(1006);
  (await socket(1)).serverClose(1006);
  (await socket(2)).welcome();
  await until(() => client.connected, 'reconnected');
  const delays = states.filter((s) => s.phase === 'reconnecting').map((s) => s.delayMs);
  assert.deepEqual(delays, [49, 99]);
  FakeWebSocket.instances[2].serverClose(1012, 'shutdown');
  const after = await until(() => states.filter((s) => s.phase === 'reconnecting')[2], 'third reconnect');
  assert.equal(after.delayMs, 49, '1012: at once with jitter, sequence restarted');
  assert.equal(after.code, 1012);
  client.close();
});

test('maxAttempts ends a run of failed handshakes (a refused upgrade is 1006 in a browser)', async () => {
  const { client, states } = newClient({ maxAttempts: 3 });
  const ready = client.connect();
  for (let i = 0; i < 3; i++) (await socket(i)).serverClose(1006);
  await assert.rejects(ready, (e) => e.code === ErrorCode.CLOSED);
  const last = states.at(-1);
  assert.equal(last.phase, 'closed');
  assert.equal(last.error.code, ErrorCode.MAX_ATTEMPTS);
  assert.equal(FakeWebSocket.instances.length, 3);
  // The first connect is attempt 1; each reconnecting state names the next.
  assert.deepEqual(states.filter((s) => s.phase === 'reconnecting').map((s) => s.attempt), [2, 3]);
});

test('token expiry (4003): a fresh token from tokenProvider reconnects; the same one stops', async () => {
  let n = 0;
  const { client, ws, states } = await connected({ tokenProvider: async () => `tok${++n}` });
  assert.ok(ws.protocols.includes(`${BEARER_PREFIX}tok1`));
  ws.receive({ type: 'bye', data: { reason: 'token_expired' } });
  ws.serverClose(4003, 'token expired');
  const ws2 = await socket(1);
  assert.ok(ws2.protocols.includes(`${BEARER_PREFIX}tok2`), 'the provider is asked again');
  assert.equal(states.find((s) => s.phase === 'reconnecting').reason, 'token_expired', 'bye reason reported');
  ws2.welcome();
  await until(() => client.connected, 'reconnected');
  client.close();

  const same = await connected({ tokenProvider: () => 'always-the-same' });
  same.ws.serverClose(4003);
  await until(() => same.states.at(-1).phase === 'closed', 'closed');
  assert.equal(FakeWebSocket.instances.length, 1, 'the same expired token is not offered again');
});

test('4001 with a static token or in cookie mode stops', async () => {
  for (const opts of [{ token: 't' }, {}]) {
    const { ws, states } = await connected(opts);
    ws.receive({ type: 'bye', data: { reason: 'logout' } });
    ws.serverClose(4001);
    await until(() => states.at(-1).phase === 'closed', 'closed');
    assert.equal(states.at(-1).reason, 'logout');
    assert.equal(FakeWebSocket.instances.length, 1);
  }
});

test('4001 on an established connection is a final logout, even with a token provider', async () => {
  const { ws, states } = await connected({ tokenProvider: async () => 'fresh-token' });
  ws.receive({ type: 'bye', data: { reason: 'logout' } });
  ws.serverClose(4001);
  await until(() => states.at(-1).phase === 'closed', 'closed');
  assert.equal(states.at(-1).reason, 'logout');
  assert.equal(states.at(-1).error?.code, 'LOGGED_OUT');
  assert.ok(!states.some((st) => st.phase === 'reconnecting'), 'no reconnecting state');
  assert.equal(FakeWebSocket.instances.length, 1, 'no redial');
});

test('refresh sends auth in-band; the new token is used on the next reconnect', async () => {
  const { client, ws } = await connected({ token: 'old' });
  const r = client.refresh('new');
  const f = await ws.nextSent((x) => x.type === 'auth');
  assert.deepEqual(f.data, { token: 'new' });
  ws.receive({ type: 'ack', id: f.id });
  await r;
  const bad = client.refresh('other-user');
  const fb = await ws.nextSent((x) => x.type === 'auth' && x.data.token === 'other-user');
  ws.receive({ type: 'error', id: fb.id, code: 'UNAUTHORIZED', message: 'token is for another user' });
  await assert.rejects(bad, (e) => e.code === 'UNAUTHORIZED' && e.server);
  ws.serverClose(1006);
  const ws2 = await socket(1);
  assert.ok(ws2.protocols.includes(`${BEARER_PREFIX}new`));
  ws2.welcome();
  await until(() => client.connected, 'reconnected');
  // The refreshed token expiring too leaves a static-token client nothing
  // fresh to offer: it stops rather than offering it again.
  ws2.serverClose(4003);
  await assert.rejects(client.refresh('x'), (e) => e.code === ErrorCode.CLOSED && e.closeCode === 4003);
  assert.equal(FakeWebSocket.instances.length, 2);
  await assert.rejects(client.refresh(''), (e) => e.code === ErrorCode.INVALID_ARGUMENT);
});

test('first-message auth sends the token in an auth frame, not the subprotocol', async () => {
  const { client } = newClient({ token: 'tkn', tokenVia: 'message' });
  const ready = client.connect();
  const ws = await socket(0);
  assert.deepEqual(ws.protocols, [SUBPROTOCOL]);
  ws.open();
  const f = await ws.nextSent((x) => x.type === 'auth');
  assert.deepEqual(f.data, { token: 'tkn' });
  ws.receive({ type: 'ack', id: f.id });
  ws.receive({ type: 'welcome', data: { connectionId: 'c', userId: 'u', expiresAt: 0, heartbeatMs: 1 } });
  assert.equal((await ready).userId, 'u');
  client.close();
});

test('a server that does not select wsgate.v1 is not retried', async () => {
  const { client, states } = newClient();
  const ready = client.connect();
  (await socket(0)).open('');
  await assert.rejects(ready, (e) => e.code === ErrorCode.CLOSED);
  assert.equal(states.at(-1).error.code, ErrorCode.PROTOCOL);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test('no welcome within the dial timeout fails the attempt and retries', async () => {
  const { client } = newClient({ dialTimeoutMs: 30 });
  client.connect();
  const ws = await socket(0);
  ws.open();
  await until(() => ws.readyState === 3, 'the attempt abandoned');
  (await socket(1)).welcome();
  await until(() => client.connected, 'connected on the second attempt');
  client.close();
});

test('idle close (4002) reconnects only when needed', async () => {
  const { client, ws, states } = await connected();
  ws.serverClose(4002);
  await until(() => states.at(-1).phase === 'idle', 'idle');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeWebSocket.instances.length, 1, 'no reconnect while nothing is needed');
  const p = client.call('x');
  const ws2 = await socket(1);
  ws2.welcome();
  const f = await ws2.nextSent((x) => x.event === 'x');
  ws2.receive({ type: 'ack', id: f.id });
  await p;
  client.close();
});

test('close() stops everything: waiting calls reject, no callbacks after', async () => {
  const { client, ws, states, events } = await connected();
  ws.serverClose(1006);
  const waiting = client.call('x');
  client.close();
  await assert.rejects(waiting, (e) => e.code === ErrorCode.CLOSED);
  await assert.rejects(client.connect(), (e) => e.code === ErrorCode.CLOSED);
  assert.equal(states.at(-1).phase, 'closed');
  assert.equal(states.at(-1).error, undefined, 'close() is not an error');
  const n = states.length;
  await new Promise((r) => setTimeout(r, 20));
  const ws2 = FakeWebSocket.instances[1];
  if (ws2) ws2.welcome();
  assert.equal(states.length, n);
  assert.equal(events.length, 0);
  client.close(); // idempotent
});

test('a callback that throws does not break the client', async () => {
  const reported = [];
  const original = globalThis.reportError;
  globalThis.reportError = (e) => reported.push(e);
  try {
    const { client, ws } = await connected({
      onEvent: () => {
        throw new Error('app bug');
      },
    });
    ws.receive({ type: 'event', event: 'e' });
    const p = client.call('y');
    const f = await ws.nextSent((x) => x.event === 'y');
    ws.receive({ type: 'ack', id: f.id, data: 'ok' });
    assert.equal(await p, 'ok');
    assert.equal(reported.length, 1);
    client.close();
  } finally {
    globalThis.reportError = original;
  }
});

test('invalid options are refused at construction', () => {
  const bad = [
    { backoff: { minMs: 10, maxMs: 5 } },
    { backoff: { multiplier: 0.5 } },
    { ackTimeoutMs: -1 },
    { tokenVia: 'header' },
    { token: '' },
    { protocols: ['wsgate.v1'] },
  ];
  for (const o of bad) {
    assert.throws(() => new WsgateClient(URL_, { WebSocket: FakeWebSocket, ...o }), (e) => e.code === ErrorCode.INVALID_ARGUMENT, JSON.stringify(o));
  }
  assert.equal(CloseCode.SERVICE_RESTART, 1012);
});

// --- history and recovery --------------------------------------------------------

/** A welcome carrying the tops of the automatic rooms with history. */
function welcomeAt(ws, positions) {
  ws.open();
  ws.receive({ type: 'welcome', data: { connectionId: `c${FakeWebSocket.instances.length}`, userId: 'alice', expiresAt: 0, heartbeatMs: 25000, positions } });
}

function ev(room, offset, epoch = 'E') {
  return { type: 'event', event: 'n', room, offset, epoch, data: offset };
}

/** The data of the events of room the application got. */
function seen(events, room) {
  return events.filter((e) => e.room === room).map((e) => e.data);
}

test('events of a room with history carry their position; duplicates are dropped', async () => {
  const env = newClient();
  const ready = env.client.connect();
  const ws = await socket(0);
  welcomeAt(ws, { 'user:alice': { offset: 2, epoch: 'E' } });
  await ready;
  assert.deepEqual(env.client.position('user:alice'), { offset: 2, epoch: 'E' });
  for (const o of [2, 3, 3, 1, 4]) ws.receive(ev('user:alice', o));
  ws.receive(ev('user:alice', 1, 'F')); // another epoch: new
  assert.deepEqual(seen(env.events, 'user:alice'), [3, 4, 1]);
  assert.deepEqual(env.events[0].position, { offset: 3, epoch: 'E' });
  assert.deepEqual(env.client.position('user:alice'), { offset: 1, epoch: 'F' });
  env.client.close();
});

test('a reconnect recovers the automatic and the joined rooms, holding their events back', async () => {
  const recoveries = [];
  const env = newClient({ onRecovery: (r) => recoveries.push(r) });
  const ready = env.client.connect();
  const ws = await socket(0);
  welcomeAt(ws, { 'user:alice': { offset: 3, epoch: 'E' } });
  await ready;
  const j = env.client.join('chat:1');
  const fj = await ws.nextSent((x) => x.type === 'join');
  assert.equal(fj.data, undefined, 'a first join has no since');
  ws.receive({ type: 'ack', id: fj.id, data: { offset: 10, epoch: 'C' } });
  await j;
  ws.receive(ev('user:alice', 4));
  ws.receive(ev('chat:1', 11, 'C'));
  ws.serverClose(1012, 'shutdown');

  const ws2 = await socket(1);
  welcomeAt(ws2, { 'user:alice': { offset: 7, epoch: 'E' } });
  ws2.receive(ev('user:alice', 8)); // live, before the recovery's answer
  const ru = await ws2.nextSent((x) => x.type === 'join' && x.room === 'user:alice');
  assert.deepEqual(ru.data, { since: { offset: 4, epoch: 'E' } });
  ws2.receive({ type: 'ack', id: ru.id, data: { offset: 8, epoch: 'E', recovered: true, missed: 4 } });
  for (const o of [5, 6, 7, 8]) ws2.receive(ev('user:alice', o));
  ws2.receive(ev('user:alice', 9));
  const rc = await ws2.nextSent((x) => x.type === 'join' && x.room === 'chat:1');
  assert.deepEqual(rc.data, { since: { offset: 11, epoch: 'C' } });
  ws2.receive({ type: 'ack', id: rc.id, data: { offset: 15, epoch: 'C', recovered: false, missed: 0 } });
  ws2.receive(ev('chat:1', 16, 'C'));
  assert.deepEqual(seen(env.events, 'user:alice'), [4, 5, 6, 7, 8, 9]);
  assert.deepEqual(seen(env.events, 'chat:1'), [11, 16]);
  assert.deepEqual(recoveries, [
    { room: 'user:alice', recovered: true, missed: 4, position: { offset: 8, epoch: 'E' } },
    { room: 'chat:1', recovered: false, missed: 0, position: { offset: 15, epoch: 'C' } },
  ]);
  env.client.close();
});

test('a reconnect that missed nothing, or lost the epoch, needs no recovery join', async () => {
  const recoveries = [];
  const env = newClient({ onRecovery: (r) => recoveries.push(r) });
  const ready = env.client.connect();
  const ws = await socket(0);
  welcomeAt(ws, { 'user:alice': { offset: 3, epoch: 'E' }, 'tenant:t': { offset: 1, epoch: 'T' } });
  await ready;
  ws.serverClose(1012, 'shutdown');
  const ws2 = await socket(1);
  welcomeAt(ws2, { 'user:alice': { offset: 3, epoch: 'E' }, 'tenant:t': { offset: 2, epoch: 'U' } });
  await until(() => recoveries.length === 2, 'two recovery reports');
  assert.ok(!ws2.sent.some((x) => x.type === 'join'), 'no join sent');
  assert.deepEqual(recoveries, [
    { room: 'user:alice', recovered: true, missed: 0, position: { offset: 3, epoch: 'E' } },
    { room: 'tenant:t', recovered: false, missed: 0, position: { offset: 2, epoch: 'U' } },
  ]);
  env.client.close();
});

test('$recover makes the client recover the room; a refusal is reported', async () => {
  const recoveries = [];
  const env = newClient({ onRecovery: (r) => recoveries.push(r) });
  const ready = env.client.connect();
  const ws = await socket(0);
  welcomeAt(ws, { 'user:alice': { offset: 0, epoch: 'E' }, 'tenant:t': { offset: 0, epoch: 'T' } });
  await ready;
  ws.receive(ev('user:alice', 1));
  ws.receive({ type: 'event', event: '$recover', room: 'user:alice', data: { offset: 1, epoch: 'E' } });
  ws.receive(ev('user:alice', 3)); // held until the answer
  const f = await ws.nextSent((x) => x.type === 'join' && x.room === 'user:alice');
  assert.deepEqual(f.data, { since: { offset: 1, epoch: 'E' } });
  ws.receive({ type: 'ack', id: f.id, data: { offset: 3, epoch: 'E', recovered: true, missed: 2 } });
  ws.receive(ev('user:alice', 2));
  ws.receive(ev('user:alice', 3));
  assert.deepEqual(seen(env.events, 'user:alice'), [1, 2, 3]);
  assert.ok(!env.events.some((e) => e.event === '$recover'), 'the signal is not an application event');

  ws.receive({ type: 'event', event: '$recover', room: 'tenant:t', data: { offset: 0, epoch: 'T' } });
  const g = await ws.nextSent((x) => x.type === 'join' && x.room === 'tenant:t');
  ws.receive({ type: 'error', id: g.id, code: 'FORBIDDEN', message: 'no' });
  await until(() => recoveries.length === 2, 'the refusal reported');
  assert.equal(recoveries[1].room, 'tenant:t');
  assert.equal(recoveries[1].recovered, false);
  assert.equal(recoveries[1].error.code, 'FORBIDDEN');
  env.client.close();
});

test('leave forgets the position: a later join starts afresh', async () => {
  const { client, ws } = await connected();
  const j = client.join('chat:1');
  const f = await ws.nextSent((x) => x.type === 'join');
  ws.receive({ type: 'ack', id: f.id, data: { offset: 5, epoch: 'C' } });
  await j;
  assert.deepEqual(client.position('chat:1'), { offset: 5, epoch: 'C' });
  const l = client.leave('chat:1');
  const fl = await ws.nextSent((x) => x.type === 'leave');
  ws.receive({ type: 'ack', id: fl.id });
  await l;
  assert.equal(client.position('chat:1'), undefined);
  client.close();
});
