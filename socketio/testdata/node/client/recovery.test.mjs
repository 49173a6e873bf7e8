// Connection state recovery (issue 13) with the real socket.io-client 4.8:
// a client that reconnects within MaxDisconnectionDuration gets
// socket.recovered === true and every event it missed in every room, once
// and in order — on the same node, or on another after its node shut down
// (SIGTERM) or was killed (SIGKILL), since the sessions live in Redis, not
// in the memory of the node that served them. And when more was missed
// than the history keeps: socket.recovered === false and nothing replayed.
//
// The test starts its own redis-server and two socketio/internal/nodefixture
// processes on it (node A and node B, -redis), all on free loopback ports
// and stopped by their PIDs. The client reaches the nodes through a TCP
// proxy of the test, which the test points at A or B, refuses connections
// while the client is meant to be away, and can cut (the network drops:
// no close frame). Run with `make sioclient`.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tcpConnect, createServer as tcpServer } from 'node:net';
import { after, afterEach, before, test } from 'node:test';

import {
  build, client, closeClients, connected, freePort, next, SECRET, sourceAddress, startProcess, stop, token, until, WAIT_MS,
} from './harness.mjs';

// What the fixture keeps of a "news" room (its -redis mode keeps the same).
const HISTORY_SIZE = 100;

// --- processes --------------------------------------------------------------

/** Kills a child by its PID with SIGKILL and waits for its exit. */
async function killChild(child) {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }
  await stop(child);
}

/** Answers whether a Redis on port answers PING, within a second. */
function pong(port) {
  return new Promise((resolvePong) => {
    const sock = tcpConnect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok) => {
      clearTimeout(timer);
      sock.destroy();
      resolvePong(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.setEncoding('utf8');
    sock.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

/** A redis-server of its own, without persistence, on a free port. */
async function startRedis() {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'];
  const redis = await startProcess('redis-server', process.env.REDIS_SERVER || 'redis-server', args, {}, async () => (await pong(port) ? port : 0));
  return { ...redis, addr: `127.0.0.1:${port}` };
}

/** A nodefixture on Redis at redisAddr, on a free port. */
async function startNode(name, bin, redisAddr) {
  const node = await startProcess(name, bin, ['-addr', '127.0.0.1:0', '-redis', redisAddr], { WSGATE_JWT_SECRET: SECRET }, async (out) => {
    const m = /listening on (\S+)/.exec(out());
    return m ? m[1] : '';
  });
  const url = node.got;
  console.log(`nodefixture ${name} (PID ${node.child.pid}) on ${url}, Redis ${redisAddr}`);
  return { ...node, url, port: Number(new URL(url).port) };
}

// --- the proxy ----------------------------------------------------------------

/**
 * A TCP proxy on a free loopback port to the node set with to(): with no
 * node, it refuses connections (closes them at once). Its connections to
 * the node leave from the client's own address, so that the nodes' per-IP
 * handshake throttle sees each test's address. cut() drops every
 * connection at once, as a network failure would: no close frame.
 */
async function startProxy() {
  const conns = new Set();
  let target = null;
  const server = tcpServer((down) => {
    if (!target) {
      down.destroy();
      return;
    }
    const up = tcpConnect({ host: '127.0.0.1', port: target.port, localAddress: down.remoteAddress });
    const pair = { down, up };
    conns.add(pair);
    const drop = () => {
      down.destroy();
      up.destroy();
      conns.delete(pair);
    };
    // An end passes through (pipe ends the other side, after what was
    // written); an error or a close drops both.
    down.on('error', drop);
    up.on('error', drop);
    down.on('close', () => setTimeout(drop, 200));
    up.on('close', () => setTimeout(drop, 200));
    down.pipe(up);
    up.pipe(down);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    to(node) {
      target = node;
    },
    cut() {
      for (const { down, up } of conns) {
        down.destroy();
        up.destroy();
      }
      conns.clear();
    },
    close() {
      target = null;
      this.cut();
      return new Promise((r) => server.close(r));
    },
  };
}

// --- the suite ----------------------------------------------------------------

let built;
let redis;
let proxy;
/** @type {{A: any, B: any}} */
const nodes = {};

before(async () => {
  built = await build('./socketio/internal/nodefixture');
  redis = await startRedis();
  console.log(`redis-server (PID ${redis.child.pid}) on ${redis.addr}`);
  [nodes.A, nodes.B] = await Promise.all([startNode('A', built.bins[0], redis.addr), startNode('B', built.bins[0], redis.addr)]);
  proxy = await startProxy();
});

after(async () => {
  closeClients();
  await proxy?.close();
  await Promise.all([nodes.A, nodes.B].map((n) => n && stop(n.child)));
  await stop(redis?.child);
  built?.cleanup();
});

afterEach(async (t) => {
  closeClients();
  proxy.to(null);
  proxy.cut();
  // A test that stopped node A starts another in its place, so that every
  // test finds two nodes.
  if (nodes.A.child.exitCode !== null || nodes.A.child.signalCode !== null) {
    nodes.A = await startNode('A', built.bins[0], redis.addr);
  }
  if (t.passed === false) {
    for (const n of [nodes.A, nodes.B]) console.log(`--- logs of ${n.name}:\n${n.logs.slice(-40).join('\n')}`);
  }
});

/**
 * The client under test: user's socket through the proxy (pointed at
 * node), over WebSocket, which keeps every "news" {n} and "tick" {seq} it
 * receives — the first argument only: the offset follows it — and whether
 * it had recovered at the time.
 */
async function recoveringClient(user, node, address) {
  proxy.to(node);
  const socket = client(proxy.url, address, { auth: { token: token(user) }, transports: ['websocket'] });
  const got = { news: [], ticks: [], log: [] };
  socket.on('news', (data, offset) => {
    assert.equal(typeof offset, 'string', 'the offset follows the event\'s argument');
    got.news.push(data.n);
    got.log.push(`news ${data.n}${socket.recovered ? ' (recovered)' : ''}`);
  });
  socket.on('tick', (data) => {
    got.ticks.push(data.seq);
    got.log.push(`tick ${data.seq}`);
  });
  socket.on('connect', () => got.log.push(`connect recovered=${socket.recovered}`));
  socket.on('disconnect', (reason) => got.log.push(`disconnect ${reason}`));
  await connected(socket);
  assert.equal(typeof socket._pid, 'string', 'the CONNECT carried a pid: the server recovers sessions');
  assert.equal(socket.recovered, false, 'a first connection recovers nothing');
  return { socket, got };
}

/** A socket of user straight to node (no proxy), that publishes. */
async function publisher(user, node, address) {
  const socket = client(node.url, address, { auth: { token: token(user) }, transports: ['websocket'] });
  const ticks = [];
  socket.on('tick', (data) => ticks.push(data.seq));
  await connected(socket);
  return {
    socket,
    /** Publishes "news" {from..to} to room and waits until all are in its history. */
    async news(room, from, to) {
      const reply = await socket.timeout(WAIT_MS).emitWithAck('publish', { room, from, to });
      assert.deepEqual(reply, { published: to - from + 1 }, `publish ${room} ${from}..${to}`);
    },
    /** Sends count "tick"s to the user and waits until it received them itself. */
    async ticks(count) {
      const before = ticks.length;
      const reply = await socket.timeout(WAIT_MS).emitWithAck('stream', { count, everyMs: 1 });
      assert.deepEqual(reply, { started: true });
      await until(socket, ['tick'], () => ticks.length >= before + count);
    },
  };
}

async function join(socket, room) {
  const ack = await socket.timeout(WAIT_MS).emitWithAck('join', room);
  assert.equal(ack?.error, undefined, `join ${room}`);
  assert.equal(typeof ack?.epoch, 'string', `${room} keeps history: the join answers its position`);
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The news of room 1 (n < 1000) and of room 2 (n ≥ 1000), each in the order received. */
function byRoom(news) {
  return [news.filter((n) => n < 1000), news.filter((n) => n >= 1000)];
}

/**
 * The scenario the recovering tests share: user's client on node `from`
 * joins two news rooms and is sent 1..3 in each, and two ticks to the
 * user; then away() takes it away (the proxy refusing it meanwhile), the
 * other node publishes 4..6 in each room and three ticks, the client
 * comes back to node `to` and must have recovered everything missed,
 * once and in order, then the live 7. closeCode, when set, is the close
 * code the client's WebSocket must have been closed with.
 */
async function recovers(name, from, to, away, closeCode) {
  const address = sourceAddress();
  const user = `${name}-user`;
  const rooms = [`news:${name}-1`, `news:${name}-2`];
  const { socket, got } = await recoveringClient(user, nodes[from], address);
  for (const room of rooms) await join(socket, room);
  const pubFrom = await publisher(user, nodes[from], sourceAddress());
  await pubFrom.news(rooms[0], 1, 3);
  await pubFrom.news(rooms[1], 1001, 1003);
  await pubFrom.ticks(2);
  await until(socket, ['news', 'tick'], () => got.news.length === 6 && got.ticks.length === 2);
  assert.deepEqual(byRoom(got.news), [[1, 2, 3], [1001, 1002, 1003]]);
  const pid = socket._pid;

  proxy.to(null);
  const disconnected = next(socket, 'disconnect');
  await away(pubFrom);
  const [reason, description] = [].concat(await disconnected);
  assert.equal(reason, 'transport close');
  assert.ok(socket.active, `the client reconnects by itself after "${reason}"`);
  if (closeCode) assert.equal(description?.context?.code, closeCode, 'the WebSocket\'s close code');

  // Published while the client is away, on the node it comes back to
  // (after `from` is gone, the only one).
  const pubTo = to === from ? pubFrom : await publisher(user, nodes[to], sourceAddress());
  await pubTo.news(rooms[0], 4, 6);
  await pubTo.news(rooms[1], 1004, 1006);
  await pubTo.ticks(3);
  assert.equal(got.news.length, 6, 'nothing reached the client while it was away');

  const reconnected = next(socket, 'connect', WAIT_MS);
  proxy.to(nodes[to]);
  await reconnected;
  assert.equal(socket.recovered, true, `socket.recovered after "${reason}", on node ${to}:\n${got.log.join('\n')}`);
  assert.equal(socket._pid, pid, 'the same session');
  await until(socket, ['news', 'tick'], () => got.news.length >= 12 && got.ticks.length >= 5);
  await pubTo.news(rooms[0], 7, 7);
  await pubTo.news(rooms[1], 1007, 1007);
  await until(socket, ['news'], () => got.news.length >= 14);
  // A moment more, for anything doubled to show.
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(byRoom(got.news), [range(1, 7), range(1001, 1007)], `every event once, in order:\n${got.log.join('\n')}`);
  assert.deepEqual(got.ticks, [0, 1, 0, 1, 2], 'the user\'s ticks too (the "user" room keeps history)');
  assert.ok(
    got.log.slice(got.log.indexOf('connect recovered=true')).filter((l) => l.startsWith('news')).slice(0, 6).every((l) => l.endsWith('(recovered)')),
    'the missed events came after the recovered CONNECT',
  );
  console.log(`${name}: disconnected ("${reason}"), recovered on node ${to}: ${got.news.length} news, ${got.ticks.length} ticks`);
}

test('same node: the connection drops, the client comes back and recovers what it missed', { timeout: 40_000 }, async () => {
  await recovers('same', 'A', 'A', async () => proxy.cut());
});

test('another node, after its node shut down gracefully (SIGTERM, 1012)', { timeout: 40_000 }, async () => {
  await recovers('sigterm', 'A', 'B', async () => {
    await stop(nodes.A.child);
    assert.equal(nodes.A.child.exitCode, 0, 'node A exited cleanly');
  }, 1012);
});

test('another node, after its node was killed (SIGKILL): the session was in Redis', { timeout: 40_000 }, async () => {
  await recovers('sigkill', 'A', 'B', async () => {
    await killChild(nodes.A.child);
    assert.equal(nodes.A.child.signalCode, 'SIGKILL');
  });
});

test('more missed than the history keeps: recovered false, nothing replayed, then live events', { timeout: 40_000 }, async () => {
  const address = sourceAddress();
  const user = 'trimmed-user';
  const rooms = ['news:trimmed-1', 'news:trimmed-2'];
  const { socket, got } = await recoveringClient(user, nodes.A, address);
  for (const room of rooms) await join(socket, room);
  const pub = await publisher(user, nodes.B, sourceAddress());
  await pub.news(rooms[0], 1, 2);
  await pub.news(rooms[1], 1001, 1002);
  await until(socket, ['news'], () => got.news.length === 4);
  const pid = socket._pid;

  proxy.to(null);
  const disconnected = next(socket, 'disconnect');
  proxy.cut();
  await disconnected;
  // Room 1 loses more than it keeps; room 2 misses little, but recovery is
  // all or nothing.
  const missed = HISTORY_SIZE + 20;
  await pub.news(rooms[0], 3, 2 + missed);
  await pub.news(rooms[1], 1003, 1004);

  const reconnected = next(socket, 'connect', WAIT_MS);
  proxy.to(nodes.B);
  await reconnected;
  assert.equal(socket.recovered, false, `not recovered:\n${got.log.join('\n')}`);
  assert.notEqual(socket._pid, pid, 'a new session');
  // A new session is in no room: the application joins again, and live
  // events follow; nothing missed is replayed.
  for (const room of rooms) await join(socket, room);
  await pub.news(rooms[0], 1000 - 1, 1000 - 1);
  await pub.news(rooms[1], 2000, 2000);
  await until(socket, ['news'], () => got.news.length >= 6);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(byRoom(got.news), [[1, 2, 999], [1001, 1002, 2000]], `nothing missed replayed:\n${got.log.join('\n')}`);
});
