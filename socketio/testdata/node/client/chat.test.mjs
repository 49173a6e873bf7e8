// The real socket.io-client 4.8 (from this folder's lockfile) against
// examples/chat, built from this checkout and started on a free loopback
// port with its own JWT secret (the tests sign the tokens), stopped by its
// PID. Run with `make sioclient`.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';

import { NodeXHR } from 'socket.io-client';

import {
  build, client, closeClients, connected, gatedWebSocket, next, sourceAddress, startChat, stop, token, until, WAIT_MS,
} from './harness.mjs';

const CONVERSATION = '6f1c2a7e-3b4d-4c5e-8f90-a1b2c3d4e5f6'; // alice & bob, seeded by the example
const PRIVATE = '0d9e8f7a-6b5c-4d3e-9f2a-1b0c9d8e7f6a'; // bob & carol: alice is refused
const ROOM = `conversation:${CONVERSATION}`;

let built;
let chat;

before(async () => {
  built = await build('./examples/chat');
  chat = await startChat(built.bins[0]);
  console.log(`examples/chat (PID ${chat.child.pid}) on ${chat.url}`);
});

after(async () => {
  closeClients();
  await stop(chat?.child);
  built?.cleanup();
});

afterEach(() => closeClients());

/** Connects user to chat with opts and joins the conversation. */
async function joined(user, address, opts = {}) {
  const socket = client(chat.url, address, { auth: { token: token(user) }, ...opts });
  await connected(socket);
  // The conversation keeps history: the join's ack is its position, not
  // an error.
  const ack = await socket.emitWithAck('join', ROOM);
  assert.equal(ack?.error, undefined, 'join answered without an error');
  assert.equal(typeof ack?.epoch, 'string', 'the join answers the room\'s position');
  return socket;
}

/** The sum of the chat's auth-failure counters, from /metrics. */
async function authFailures() {
  const text = await (await fetch(`${chat.url}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) })).text();
  return text.split('\n').filter((l) => l.startsWith('wsgate_auth_failures_total'))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

test('default transports: polling, then the upgrade, with no message lost or doubled', { timeout: 30_000 }, async () => {
  const address = sourceAddress();
  const gate = gatedWebSocket();
  const alice = await joined('alice', address, { transports: [NodeXHR, gate.GatedWebSocket] });
  assert.equal(alice.io.engine.transport.name, 'polling');
  const bob = await joined('bob', address, { transports: ['websocket'] });

  const stamp = `upgrade-${Date.now().toString(36)}`;
  const received = []; // {seq, transport}
  alice.on('message:new', (m) => {
    if (m.content.startsWith(stamp)) received.push({ seq: Number(m.content.split(' ')[1]), transport: alice.io.engine.transport.name });
  });
  // Bob publishes without pause (within the chat's rate limit of 10 a
  // second) while alice polls, upgrades, and goes on over the WebSocket.
  let sent = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing && sent < 100) {
      const reply = await bob.timeout(WAIT_MS).emitWithAck('message:send', { conversationId: CONVERSATION, content: `${stamp} ${sent}` });
      assert.ok(reply.id && !reply.error, `message ${sent}: ${JSON.stringify(reply)}`);
      sent++;
      await new Promise((r) => setTimeout(r, 120));
    }
  })();
  const onTransport = (name) => received.filter((r) => r.transport === name).length;
  await until(alice, ['message:new'], () => onTransport('polling') >= 3);
  const upgraded = next(alice.io.engine, 'upgrade');
  gate.release();
  assert.equal((await upgraded).name, 'websocket');
  await until(alice, ['message:new'], () => onTransport('websocket') >= 3);
  publishing = false;
  await publisher;
  await until(alice, ['message:new'], () => received.length >= sent);
  assert.deepEqual(received.map((r) => r.seq), [...Array(sent).keys()], 'every message once, in order');
  console.log(`${sent} messages: ${onTransport('polling')} over polling, ${onTransport('websocket')} over the WebSocket`);
});

test('websocket only', async () => {
  const alice = await joined('alice', sourceAddress(), { transports: ['websocket'] });
  assert.equal(alice.io.engine.transport.name, 'websocket');
  const content = `ws only ${Date.now()}`;
  const own = next(alice, 'message:new');
  const reply = await alice.emitWithAck('message:send', { conversationId: CONVERSATION, content });
  assert.match(reply.id, /^[0-9a-f-]{36}$/);
  assert.ok(Date.parse(reply.sentAt));
  const m = await own;
  assert.deepEqual([m.id, m.senderId, m.content], [reply.id, 'alice', content]);
});

test('polling only', async () => {
  const alice = await joined('alice', sourceAddress(), { transports: ['polling'] });
  let upgraded = false;
  alice.io.engine.on('upgrade', () => {
    upgraded = true;
  });
  const content = `polling only ${Date.now()}`;
  const own = next(alice, 'message:new');
  const reply = await alice.emitWithAck('message:send', { conversationId: CONVERSATION, content });
  assert.equal((await own).id, reply.id);
  assert.equal(alice.io.engine.transport.name, 'polling');
  assert.equal(upgraded, false);
});

test('auth as a function', async () => {
  let calls = 0;
  const alice = client(chat.url, sourceAddress(), {
    auth: (cb) => {
      calls++;
      cb({ token: token('alice') });
    },
  });
  await connected(alice);
  assert.equal(calls, 1);
  assert.equal(typeof (await alice.emitWithAck('join', ROOM))?.epoch, 'string');
  const own = next(alice, 'message:new');
  await alice.emitWithAck('message:send', { conversationId: CONVERSATION, content: 'auth by function' });
  assert.equal((await own).senderId, 'alice', 'the token the function gave is the identity');
});

test('emitWithAck and timeout(): results and errors through the ack', async () => {
  const alice = await joined('alice', sourceAddress());
  const ok = await alice.timeout(WAIT_MS).emitWithAck('message:send', { conversationId: CONVERSATION, content: 'with timeout' });
  assert.match(ok.id, /^[0-9a-f-]{36}$/);
  const cases = [
    [{ conversationId: PRIVATE, content: 'not mine' }, 'FORBIDDEN'],
    [{ conversationId: CONVERSATION, content: '' }, 'INVALID_MESSAGE'],
    [{ conversationId: 'not-a-uuid', content: 'x' }, 'INVALID_MESSAGE'],
    [{ conversationId: CONVERSATION, content: 'x', extra: 1 }, 'INVALID_MESSAGE'],
  ];
  for (const [data, code] of cases) {
    const reply = await alice.timeout(WAIT_MS).emitWithAck('message:send', data);
    assert.equal(reply.error?.code, code, JSON.stringify(data));
    assert.equal(typeof reply.error.message, 'string');
  }
  assert.equal((await alice.emitWithAck('no:such:event', {})).error.code, 'UNKNOWN_EVENT');
  // The callback form, with an error first as timeout() gives it.
  const [err, reply] = await new Promise((r) => {
    alice.timeout(WAIT_MS).emit('message:send', { conversationId: CONVERSATION, content: 'callback' }, (...args) => r(args));
  });
  assert.equal(err, null);
  assert.match(reply.id, /^[0-9a-f-]{36}$/);
});

test('a forbidden join is answered through the ack', async () => {
  const alice = client(chat.url, sourceAddress(), { auth: { token: token('alice') } });
  await connected(alice);
  const refused = await alice.emitWithAck('join', `conversation:${PRIVATE}`);
  assert.deepEqual(refused.error.code, 'FORBIDDEN');
  assert.deepEqual((await alice.emitWithAck('join', 'global')).error.code, 'FORBIDDEN');
  assert.deepEqual((await alice.emitWithAck('join', '')).error.code, 'INVALID_MESSAGE');
  assert.equal(typeof (await alice.emitWithAck('join', ROOM))?.epoch, 'string', 'and an allowed one succeeds with the room\'s position');
  assert.ok(alice.connected, 'refusals leave the connection up');
});

test('CONNECT_ERROR for a bad token, and the client does not retry', async () => {
  const address = sourceAddress();
  for (const [tok, code, message] of [
    ['not-a-jwt', 'UNAUTHORIZED', 'invalid credentials'],
    [token('alice', -120), 'TOKEN_EXPIRED', 'token expired'],
  ]) {
    const before = await authFailures();
    let attempts = 0;
    const socket = client(chat.url, address, { auth: { token: tok }, reconnectionDelay: 20, reconnectionDelayMax: 50 });
    socket.io.on('reconnect_attempt', () => attempts++);
    const err = await next(socket, 'connect_error');
    assert.equal(err.message, message);
    assert.deepEqual(err.data, { code });
    assert.equal(socket.active, false, 'socket.io-client gave up: the server refused');
    // With a 20-50 ms backoff, a retry would have happened many times over
    // in this window; the server counts each attempt.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(attempts, 0);
    assert.equal(await authFailures(), before + 1, 'one attempt reached the server');
  }
});

test('a page of another origin is refused before any session', async () => {
  for (const transports of [['polling'], ['websocket']]) {
    const socket = client(chat.url, sourceAddress(), {
      auth: { token: token('alice') }, transports, reconnection: false, origin: 'http://evil.example',
    });
    const err = await next(socket, 'connect_error');
    const status = typeof err.description === 'number' ? err.description : String(err.description?.message || err.description?.error?.message);
    assert.match(String(status), /403/, `${transports}: ${err.message} ${status}`);
    assert.equal(socket.connected, false);
  }
  const refusals = chat.logs.filter((l) => l.includes('"origin_rejected"')).map((l) => JSON.parse(l));
  assert.ok(refusals.some((l) => l.origin === 'http://evil.example'), 'the server logged the refusal with the origin');
});

// Last: it restarts the server.
test('a shutdown closes with 1012 and the client reconnects, then works', { timeout: 40_000 }, async () => {
  const address = sourceAddress();
  const ws = await joined('alice', address, { transports: ['websocket'] });
  const polling = await joined('bob', address, { transports: ['polling'] });
  const wsGone = next(ws, 'disconnect');
  const pollingGone = next(polling, 'disconnect');
  const port = new URL(chat.url).port;
  await stop(chat.child);
  const [reason, description] = await wsGone;
  assert.equal(reason, 'transport close');
  assert.equal(description.context.code, 1012, 'the WebSocket closed with 1012 (service restart)');
  assert.equal((await pollingGone)[0], 'transport close');
  assert.ok(ws.active && polling.active, 'both reconnect on their own');

  chat = await startChat(built.bins[0], port);
  console.log(`examples/chat restarted (PID ${chat.child.pid}) on ${chat.url}`);
  await Promise.all([connected(ws, 20_000), connected(polling, 20_000)]);
  // Rooms other than the automatic ones are the client's to rejoin.
  for (const s of [ws, polling]) assert.equal(typeof (await s.emitWithAck('join', ROOM))?.epoch, 'string');
  const got = next(polling, 'message:new');
  const reply = await ws.emitWithAck('message:send', { conversationId: CONVERSATION, content: 'after the restart' });
  assert.equal((await got).id, reply.id);
});
