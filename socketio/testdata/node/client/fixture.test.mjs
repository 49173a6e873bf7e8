// The real socket.io-client 4.8 against socketio/internal/nodefixture, for
// what examples/chat does not serve: binary, two namespaces on one
// session, acks asked by the server, and a server that publishes without
// pause while a client upgrades. Run with `make sioclient`.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';

import { NodeXHR } from 'socket.io-client';

import {
  build, client, closeClients, connected, gatedWebSocket, next, sourceAddress, startFixture, stop, token, until, WAIT_MS,
} from './harness.mjs';

let built;
let fixture;

before(async () => {
  built = await build('./socketio/internal/nodefixture');
  fixture = await startFixture(built.bins[0]);
  console.log(`nodefixture (PID ${fixture.child.pid}) on ${fixture.url}`);
});

after(async () => {
  closeClients();
  await stop(fixture?.child);
  built?.cleanup();
});

afterEach(() => closeClients());

async function connect(user, opts = {}, address = sourceAddress()) {
  const socket = client(fixture.url, address, { auth: { token: token(user) }, ...opts });
  await connected(socket);
  return socket;
}

for (const transports of [['websocket'], ['polling']]) {
  test(`binary over ${transports}: Buffers in events, nested, and in acks`, async () => {
    const socket = await connect(`bin-${transports}`, { transports });
    const data = Buffer.from([0, 1, 2, 250, 255]);
    const parts = [{ data: Buffer.from('first') }, { data: Buffer.from('second') }];
    const reply = await socket.timeout(WAIT_MS).emitWithAck('upload', { name: 'a.bin', data, parts });
    assert.equal(reply.name, 'a.bin');
    assert.equal(reply.size, 5);
    assert.ok(Buffer.isBuffer(reply.data), 'the ack carries an attachment, a Buffer');
    assert.deepEqual([...reply.data], [255, 250, 2, 1, 0]);
    assert.deepEqual(reply.parts.map((p) => Buffer.from(p.data).toString()), ['first', 'second'], 'nested attachments');
    assert.ok(reply.parts.every((p) => Buffer.isBuffer(p.data)));
    assert.equal(socket.io.engine.transport.name, transports[0]);
  });
}

test('two namespaces on one Engine.IO session', async () => {
  const main = await connect('two-ns');
  const notif = main.io.socket('/notifications', { auth: { token: token('two-ns') } });
  await connected(notif);
  assert.equal(notif.io, main.io, 'one Manager');
  assert.notEqual(notif.id, main.id, 'a Socket.IO id per namespace');
  assert.deepEqual(await notif.emitWithAck('whoami'), { namespace: '/notifications', user: 'two-ns' });
  assert.deepEqual(await main.emitWithAck('echo', { from: '/' }), { from: '/' });
  assert.equal((await main.emitWithAck('whoami')).error.code, 'UNKNOWN_EVENT', 'each namespace has its own handlers');
  notif.disconnect();
  assert.deepEqual(await main.emitWithAck('echo', 'still here'), 'still here', 'leaving one namespace keeps the other');
});

test('timeout() rejects when the server is slower', async () => {
  const socket = await connect('slow');
  assert.deepEqual(await socket.timeout(WAIT_MS).emitWithAck('slow', { ms: 20 }), { ms: 20 });
  await assert.rejects(socket.timeout(100).emitWithAck('slow', { ms: 2000 }), /operation has timed out/);
  const err = await new Promise((r) => {
    socket.timeout(100).emit('slow', { ms: 2000 }, (e) => r(e));
  });
  assert.match(err.message, /operation has timed out/);
});

for (const transports of [['websocket'], ['polling']]) {
  test(`the server asks for an ack and the client answers, over ${transports}`, async () => {
    const socket = await connect(`asked-${transports}`, { transports });
    socket.on('question', (q, ack) => ack({ got: q.q }));
    assert.deepEqual(await socket.emitWithAck('ask', { q: 'sure?' }), { answer: { got: 'sure?' } });

    // The client emits before it answers: the server reads on to the
    // answer, and handles the event after the handler that waited, in the
    // order the client sent them.
    socket.off('question');
    const answers = [];
    let echoed;
    const echo = new Promise((r) => {
      echoed = r;
    });
    socket.on('question', (q, ack) => {
      socket.emit('echo', `meanwhile ${q.q}`, (r) => {
        answers.push(r);
        echoed();
      });
      ack('answered');
    });
    // Callbacks, not awaits, so that the order is the order of arrival.
    socket.timeout(WAIT_MS).emit('ask', { q: 'nested' }, (err, r) => answers.push(err || r));
    await echo;
    assert.deepEqual(answers, [{ answer: 'answered' }, 'meanwhile nested']);

    // Binary both ways: the question carries a Buffer, the answer too
    // (the server's handler gets it as base64).
    socket.off('question');
    socket.on('question', (q, ack) => ack(Buffer.concat([q.blob, Buffer.from('!')])));
    const reply = await socket.emitWithAck('ask-binary', { q: 'b' });
    assert.equal(Buffer.from(reply.answer, 'base64').toString(), 'bytes!!');
  });
}

test('no event lost or doubled while the client upgrades under a continuous stream', { timeout: 30_000 }, async () => {
  const gate = gatedWebSocket();
  const socket = await connect('streamer', { transports: [NodeXHR, gate.GatedWebSocket] });
  assert.equal(socket.io.engine.transport.name, 'polling');
  const count = 1000;
  const seqs = [];
  let onPolling = 0;
  socket.on('tick', ({ seq }) => {
    seqs.push(seq);
    if (socket.io.engine.transport.name === 'polling') onPolling++;
  });
  assert.deepEqual(await socket.emitWithAck('stream', { count, everyMs: 2 }), { started: true });
  await until(socket, ['tick'], () => seqs.length >= 100);
  const upgraded = next(socket.io.engine, 'upgrade');
  gate.release();
  assert.equal((await upgraded).name, 'websocket');
  const atUpgrade = seqs.length;
  await until(socket, ['tick'], () => seqs.length >= count || seqs.at(-1) === count - 1, 20_000);
  assert.deepEqual(seqs, [...Array(count).keys()], 'every tick once, in order');
  assert.ok(atUpgrade < count, 'the upgrade happened while the server was sending');
  console.log(`${count} ticks every 2 ms: ${onPolling} over polling, ${count - onPolling} over the WebSocket (upgraded after ${atUpgrade})`);
});
