// What the socket.io-client tests share: the servers they start (built
// from this checkout with go build, started on free loopback ports and
// stopped by their PIDs whatever happens), tokens, and clients with every
// wait bounded.
import { execFile, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Agent, createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { io, NodeWebSocket } from 'socket.io-client';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const GO = process.env.GO || 'go';

/** The bound of every wait of these tests, in milliseconds. */
export const WAIT_MS = 10_000;

// --- processes --------------------------------------------------------------

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();

process.on('exit', () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

/** Stops a child by its PID: SIGTERM, then SIGKILL after 5 s. */
export async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  const exited = once(child, 'exit');
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 5000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** Builds the Go commands (packages relative to the repository) into a temporary directory. */
export async function build(...pkgs) {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-sioclient-'));
  const env = { ...process.env, GOFLAGS: `${process.env.GOFLAGS || ''} -buildvcs=false`.trim() };
  const bins = await Promise.all(pkgs.map(async (pkg) => {
    const bin = join(dir, pkg.split('/').pop());
    await promisify(execFile)(GO, ['build', '-o', bin, pkg], { cwd: ROOT, timeout: 180_000, env });
    return bin;
  }));
  return { bins, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * Starts bin with args and env, keeps its stderr lines (JSON logs), and
 * waits (within WAIT_MS) until ready(stdoutSoFar) resolves to something
 * truthy: its URL, its port... returned as got (and url). The child is
 * stopped by its PID when the test process exits.
 */
export async function startProcess(name, bin, args, env, ready) {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const logs = [];
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr.setEncoding('utf8');
  let partial = '';
  child.stderr.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    logs.push(...lines.filter(Boolean));
  });
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline && child.exitCode === null) {
    const got = await ready(() => out);
    if (got) return { name, child, got, url: got, logs };
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop(child);
  throw new Error(`${name} did not start:\n${out}\n${logs.join('\n')}`);
}

/** A secret for HS256 tokens, shared by the servers and the tests. */
export const SECRET = randomBytes(32).toString('hex');

/**
 * Starts examples/chat on port (a free one by default) with SECRET, so
 * that the tests sign its tokens, until /healthz answers.
 */
export async function startChat(bin, port) {
  port ||= await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = { WSGATE_JWT_SECRET: SECRET, WSGATE_ORIGINS: '', WSGATE_ADDR: '' };
  return startProcess('chat', bin, ['-addr', `127.0.0.1:${port}`], env, async () => {
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      return res.ok ? url : '';
    } catch {
      return '';
    }
  });
}

/** Starts socketio/internal/nodefixture on a free port. */
export function startFixture(bin) {
  return startProcess('nodefixture', bin, ['-addr', '127.0.0.1:0'], { WSGATE_JWT_SECRET: SECRET }, async (out) => {
    const m = /listening on (\S+)/.exec(out());
    return m ? m[1] : '';
  });
}

// --- tokens -------------------------------------------------------------------

/** An HS256 JWT for user, signed with SECRET, valid for ttl seconds (negative: expired). */
export function token(user, ttl = 3600) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const claims = ttl > 0 ? { sub: user, iat: now, exp: now + ttl } : { sub: user, iat: now + ttl - 60, exp: now + ttl };
  const data = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${data}.${createHmac('sha256', SECRET).update(data).digest('base64url')}`;
}

// --- clients ------------------------------------------------------------------

// Each client test gets its own loopback source address (127.0.0.2,
// 127.0.0.3, ...): the servers throttle handshakes per client IP (10 a
// minute), which one address would exhaust over the suite.
let nextAddress = 2;

/** Returns a fresh loopback source address for the clients of one test. */
export function sourceAddress() {
  const n = nextAddress++;
  return `127.0.${Math.floor(n / 250)}.${(n % 250) + 2}`;
}

/** @type {Set<import('socket.io-client').Socket>} */
const sockets = new Set();

/**
 * A socket.io-client socket to url (a namespace URL), from a page of the
 * server's own origin (opts.origin overrides it), leaving from address.
 * Each has a Manager of its own unless opts.forceNew is false; reconnects
 * are quick so that the tests stay short.
 */
export function client(url, address, opts = {}) {
  const { origin, ...rest } = opts;
  const socket = io(url, {
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    timeout: WAIT_MS,
    extraHeaders: { Origin: origin || new URL(url).origin },
    agent: new Agent({ localAddress: address }),
    localAddress: address,
    ...rest,
  });
  sockets.add(socket);
  return socket;
}

/** Disconnects every client the tests made. */
export function closeClients() {
  for (const s of sockets) {
    s.io.reconnection(false);
    s.disconnect();
    s.io.engine?.close();
  }
  sockets.clear();
}

/** Resolves with the arguments of emitter's next event (one: itself), rejects after ms. */
export function next(emitter, event, ms = WAIT_MS) {
  return new Promise((resolveEvent, reject) => {
    const on = (...args) => {
      clearTimeout(timer);
      resolveEvent(args.length === 1 ? args[0] : args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no "${event}" within ${ms} ms`));
    }, ms);
    emitter.once(event, on);
  });
}

/** Resolves once socket is connected, rejects with its connect_error. */
export function connected(socket, ms = WAIT_MS) {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolveConnect, reject) => {
    const done = (err) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
      if (err) reject(err);
      else resolveConnect();
    };
    const onConnect = () => done();
    const onError = (err) => done(err);
    const timer = setTimeout(() => done(new Error(`not connected within ${ms} ms`)), ms);
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

/**
 * Resolves once check() is true, checking after each of emitter's events
 * named in events; rejects after ms.
 */
export function until(emitter, events, check, ms = WAIT_MS) {
  if (check()) return Promise.resolve();
  return new Promise((resolveCheck, reject) => {
    const on = () => {
      if (!check()) return;
      done();
      resolveCheck();
    };
    const done = () => {
      clearTimeout(timer);
      for (const e of events) emitter.off(e, on);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`condition not met within ${ms} ms (after ${events.join(', ')})`));
    }, ms);
    for (const e of events) emitter.on(e, on);
  });
}

/**
 * A WebSocket transport whose connection waits for release(): with
 * transports [NodeXHR, GatedWebSocket], a client polls until the test lets
 * it upgrade, so that the upgrade happens while events flow.
 */
export function gatedWebSocket() {
  let release;
  const gate = new Promise((r) => {
    release = r;
  });
  class GatedWebSocket extends NodeWebSocket {
    doOpen() {
      gate.then(() => super.doOpen());
    }
  }
  return { GatedWebSocket, release };
}
