// Real-browser test of examples/chat: Debian's chromium driven by
// playwright-core, against the example server built from this checkout.
//
//  1. alice and bob log in (demo login) in two browser contexts, each with
//     its own cookie jar; alice types and sends a message; bob sees her
//     typing, then the message, and alice sees bob's read receipt. Bob's
//     WebSocket is then dropped: the module reconnects and rejoins the
//     conversation (not an automatic room), and alice's next message
//     reaches him.
//  2. Cross-site WebSocket hijacking: a page served from another loopback
//     port (another origin, but the same host, so the browser attaches
//     alice's wsgate_token cookie) opens a WebSocket to the chat server in
//     alice's context and tries to post. The browser sets the real Origin;
//     the server must refuse the upgrade (403 before any WebSocket exists:
//     the page sees 1006 and never onopen), and bob must receive nothing.
//  3. A screenshot of the working chat goes to e2e/artifacts/chat.png.
//
// And the page's Socket.IO variant (/socketio: the same page on the
// official socket.io-client, served by the example from this folder's
// node_modules): alice and bob chat through /socket.io/, polling first,
// then upgraded to a WebSocket; the screenshot is chat-socketio.png.
//
// Needs go, and chromium at /usr/bin/chromium (or $CHROMIUM). Run it with
// `make e2e`, or `npm test` in e2e/. Every wait is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const ARTIFACTS = join(HERE, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const GO = process.env.GO || 'go';
// socket.io-client's ES module bundle, from the npm package of this
// folder's lockfile: the chat serves it for its Socket.IO page.
const SIO_BUNDLE = join(HERE, 'node_modules', 'socket.io-client', 'dist', 'socket.io.esm.min.js');

const WAIT_MS = 15_000; // the bound of every browser wait
const CONVERSATION = '6f1c2a7e-3b4d-4c5e-8f90-a1b2c3d4e5f6'; // alice & bob, seeded by the example
const BROWSER_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Playwright adds --user-data-dir itself: a fresh temporary profile it
  // deletes on close (it refuses the flag in args).
];

// --- processes we start, killed by pid whatever happens -------------------

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();

function killChildren(signal = 'SIGKILL') {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, signal);
      } catch {
        // already gone
      }
    }
  }
}

process.on('exit', () => killChildren());
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killChildren();
    process.exit(130);
  });
}

/** Stops a child by its pid: SIGTERM, then SIGKILL after 3 s. */
async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 3000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

// --- helpers ------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A port that was free on 127.0.0.1 a moment ago. */
function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** Builds examples/chat into dir and returns the binary's path. */
async function buildChat(dir) {
  const bin = join(dir, 'chat');
  const started = Date.now();
  await promisify(execFile)(GO, ['build', '-o', bin, './examples/chat'], {
    cwd: ROOT,
    timeout: 90_000,
    env: { ...process.env, GOFLAGS: `${process.env.GOFLAGS || ''} -buildvcs=false`.trim() },
  });
  console.log(`built examples/chat in ${Date.now() - started} ms`);
  return bin;
}

/**
 * Starts the chat server on a free port, in demo mode, and waits until
 * /healthz answers. Its stdout (demo tokens) is read and dropped; its
 * stderr (JSON logs, which never hold tokens) is kept for assertions.
 */
async function startChat(bin, args = []) {
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const env = { ...process.env };
    delete env.WSGATE_JWT_SECRET; // demo mode: a random secret, the demo login
    delete env.WSGATE_ORIGINS; // default allowlist: the server's own origin only
    delete env.WSGATE_ADDR;
    const child = spawn(bin, ['-addr', `127.0.0.1:${port}`, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const logs = [];
    child.stdout.resume();
    child.stderr.setEncoding('utf8');
    let partial = '';
    child.stderr.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      logs.push(...lines.filter(Boolean));
    });
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return { child, url, port, logs };
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    await stop(child);
    if (tries < 2 && logs.some((l) => l.includes('address already in use'))) continue; // lost the port race
    throw new Error(`the chat server did not become healthy:\n${logs.join('\n')}`);
  }
}

/**
 * The attacker's site: one page whose script hijacks the victim's cookie.
 * It notes whether the browser sent it the victim's cookie too (the image
 * on the page asks for it), the proof that cookies do not stop at ports.
 */
function startAttacker(chatPort) {
  const seen = { victimCookie: false };
  const page = `<!doctype html>
<meta charset="utf-8">
<title>not the chat</title>
<p>A page on another origin.</p>
<img src="/pixel.gif" alt="">
<script>
  window.attack = { opened: false, error: false, closed: null, received: [] };
  // The victim's wsgate_token cookie is attached: cookies are per host, not
  // per port, and 127.0.0.1:<other port> is the same site. Only the Origin
  // header (set by the browser, not by this script) tells the server.
  const ws = new WebSocket('ws://127.0.0.1:${chatPort}/ws', ['wsgate.v1']);
  ws.onopen = () => {
    window.attack.opened = true;
    ws.send(JSON.stringify({ type: 'join', id: 1, room: 'conversation:${CONVERSATION}' }));
    ws.send(JSON.stringify({ type: 'event', id: 2, event: 'message:send',
      data: { conversationId: '${CONVERSATION}', content: 'ATTACKER WAS HERE' } }));
  };
  ws.onmessage = (e) => window.attack.received.push(String(e.data));
  ws.onerror = () => { window.attack.error = true; };
  ws.onclose = (e) => { window.attack.closed = { code: e.code, wasClean: e.wasClean }; };
</script>`;
  const server = createServer((req, res) => {
    // Presence only: the token itself is neither kept nor printed.
    if ((req.headers.cookie || '').split(';').some((c) => c.trim().startsWith('wsgate_token='))) seen.victimCookie = true;
    if (req.url === '/pixel.gif') {
      res.writeHead(204).end();
      return;
    }
    if (req.url !== '/') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(page);
  });
  return new Promise((resolveServer, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveServer({ server, seen, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

/** Collects what a page reports, so a failure shows the browser's side. */
function watch(page, name, problems) {
  page.on('pageerror', (err) => problems.push(`${name}: page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`${name}: console: ${msg.text()}`);
  });
}

/** Opens the chat (the page at path) in ctx and logs in as user through the demo form. */
async function login(ctx, chatURL, user, problems, path = '/') {
  const page = await ctx.newPage();
  watch(page, user, problems);
  await page.goto(`${chatURL}${path}`, { waitUntil: 'load' });
  await page.selectOption('#user', user);
  await page.click('#login button[type=submit]');
  await page.waitForSelector(`#chat[data-joined="${CONVERSATION}"]`, { state: 'attached' });
  assert.equal(await page.textContent('#status'), `connected as ${user}`);
  return page;
}

/** The text of every message in page's list. */
function messages(page) {
  return page.$$eval('#messages li .text', (els) => els.map((e) => e.textContent));
}

// --- the test -----------------------------------------------------------------

test('chat in a real browser; a cross-origin page cannot use the victim\'s cookie', { timeout: 110_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM`);
  const t0 = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), 'wsgate-e2e-'));
  const problems = [];
  let chat;
  let attacker;
  let browser;
  try {
    chat = await startChat(await buildChat(tmp));
    console.log(`chat server pid ${chat.child.pid} on ${chat.url}`);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS, timeout: WAIT_MS });
    const newContext = async () => {
      const ctx = await browser.newContext({ viewport: { width: 820, height: 760 } });
      ctx.setDefaultTimeout(WAIT_MS);
      ctx.setDefaultNavigationTimeout(WAIT_MS);
      return ctx;
    };
    const aliceCtx = await newContext();
    const bobCtx = await newContext();
    // Bob's page keeps a list of its WebSockets, so the test can drop one,
    // and can be taken offline: its new sockets then go nowhere.
    await bobCtx.addInitScript(() => {
      const Native = window.WebSocket;
      window.testSockets = [];
      window.testOffline = false;
      window.WebSocket = class extends Native {
        constructor(url, ...rest) {
          super(window.testOffline ? 'ws://127.0.0.1:9/ws' : url, ...rest);
          window.testSockets.push(this);
        }
      };
    });

    // 1. Two users, one conversation.
    const alice = await login(aliceCtx, chat.url, 'alice', problems);
    const bob = await login(bobCtx, chat.url, 'bob', problems);

    // Sanitized on the server (tags removed, & escaped), decoded by the
    // page and inserted as text.
    const stamp = Date.now().toString(36);
    await alice.fill('#content', `Tom & Jerry <b>say</b> hi ${stamp}`);
    const shown = `Tom & Jerry say hi ${stamp}`;
    await bob.waitForFunction(() => document.getElementById('typing').textContent === 'alice typing…');
    await alice.click('#compose button[type=submit]');
    await bob.waitForFunction((text) => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === text), shown);
    await alice.waitForFunction((text) => [...document.querySelectorAll('#messages li')]
      .some((li) => li.querySelector('.text')?.textContent === text && li.querySelector('.read')?.textContent === 'read by bob'), shown);
    assert.equal(await bob.textContent('#typing'), '', 'the typing notice ends with the message');
    assert.equal(await bob.$$eval('#messages li b', (els) => els.length), 0, 'no markup reached the page');
    assert.equal(await alice.inputValue('#content'), '', 'the input is cleared after the ack');
    console.log(`message delivered alice → bob, typing and read receipt seen (${Date.now() - t0} ms)`);

    // A dropped connection: the module reconnects (backoff with jitter) and
    // rejoins the conversation before saying it is connected; the room is
    // not automatic, so receiving the next message proves the rejoin.
    await bob.evaluate(() => window.testSockets[0].close(4000, 'test drop'));
    await bob.waitForFunction(() => window.testSockets.length === 2 && window.testSockets[1].readyState === 1);
    await bob.waitForFunction(() => document.getElementById('status').textContent === 'connected as bob');
    const rejoined = `after the reconnect ${stamp}`;
    await alice.fill('#content', rejoined);
    await alice.click('#compose button[type=submit]');
    await bob.waitForFunction((text) => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === text), rejoined);
    console.log(`bob reconnected, rejoined and received the next message (${Date.now() - t0} ms)`);

    // Offline for a while: what alice sends meanwhile reaches bob when he
    // is back, once, recovered from the conversation's history.
    await bob.evaluate(() => {
      window.testOffline = true;
      window.testSockets.at(-1).close(4000, 'test offline');
    });
    await bob.waitForFunction(() => document.getElementById('status').textContent.startsWith('disconnected'));
    const missed = `while bob was offline ${stamp}`;
    await alice.fill('#content', missed);
    await alice.click('#compose button[type=submit]');
    await alice.waitForFunction((text) => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === text), missed);
    await bob.evaluate(() => { window.testOffline = false; });
    await bob.waitForFunction((text) => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === text), missed);
    const shownToBob = await messages(bob);
    assert.equal(shownToBob.filter((m) => m === missed).length, 1, 'the missed message shows once');
    assert.deepEqual(shownToBob.slice(-2), [rejoined, missed], 'in order, after what bob had');
    assert.equal(await bob.$$eval('#errors li', (els) => els.length), 0, 'no error: the conversation was recovered');
    console.log(`bob came back online and recovered the message sent while he was away (${Date.now() - t0} ms)`);

    // 2. Cross-site WebSocket hijacking from another origin on the same host.
    attacker = await startAttacker(chat.port);
    const evil = await aliceCtx.newPage(); // alice's context: her cookie jar
    // What the page cannot see, DevTools can: the handshake's Origin and
    // why it failed.
    const cdp = await aliceCtx.newCDPSession(evil);
    await cdp.send('Network.enable');
    const handshake = { origin: '', error: '' };
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => {
      handshake.origin = e.request.headers.Origin ?? e.request.headers.origin ?? '';
    });
    cdp.on('Network.webSocketFrameError', (e) => {
      handshake.error = e.errorMessage;
    });
    await evil.goto(`${attacker.url}/`, { waitUntil: 'load' });
    await evil.waitForFunction(() => window.attack.closed !== null);
    assert.ok(attacker.seen.victimCookie, 'the browser sent alice\'s cookie to another port of 127.0.0.1: the attack is real');
    const result = await evil.evaluate(() => window.attack);
    assert.equal(result.opened, false, 'the WebSocket never opened');
    assert.equal(result.closed.code, 1006, 'the upgrade was refused (1006: no WebSocket was ever established)');
    assert.deepEqual(result.received, []);
    const refusal = chat.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((l) => l.event === 'origin_rejected');
    assert.ok(refusal, `the server logged no origin_rejected:\n${chat.logs.join('\n')}`);
    assert.equal(refusal.origin, attacker.url, 'the browser sent the attacker page\'s real Origin');
    assert.equal(handshake.origin, attacker.url);
    const deadline = Date.now() + 2000; // the DevTools event may trail the page's close event
    while (!handshake.error && Date.now() < deadline) await sleep(20);
    assert.match(handshake.error, /Unexpected response code: 403/, 'refused before the upgrade with 403');
    console.log(`cross-origin upgrade refused: "${handshake.error}", page saw close ${result.closed.code} ` +
      `and no onopen; server logged origin_rejected for ${refusal.origin} (${Date.now() - t0} ms)`);

    // Barrier: a legitimate message sent after the attack reaches bob; if
    // the attacker's had been delivered, it would have arrived before it.
    const after = `after the attack ${stamp}`;
    await alice.fill('#content', after);
    await alice.click('#compose button[type=submit]');
    await bob.waitForFunction((text) => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === text), after);
    for (const [name, page] of [['bob', bob], ['alice', alice]]) {
      const list = await messages(page);
      assert.deepEqual(list, [shown, rejoined, missed, after], `${name}'s conversation holds exactly the legitimate messages`);
    }

    // 3. The screenshot of the working chat: alice's view, her messages
    // marked as read by bob.
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'chat.png');
    await alice.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);

    assert.deepEqual(problems, [], 'the chat pages reported errors');
    console.log(`e2e done in ${Date.now() - t0} ms`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (attacker) {
      attacker.server.closeAllConnections();
      await new Promise((r) => attacker.server.close(r));
    }
    if (chat) await stop(chat.child);
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('the chat page over Socket.IO in a real browser: two users chatting through /socket.io/', { timeout: 110_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM`);
  assert.ok(existsSync(SIO_BUNDLE), `no socket.io-client bundle at ${SIO_BUNDLE}: npm ci in e2e/`);
  const t0 = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), 'wsgate-e2e-'));
  const problems = [];
  let chat;
  let browser;
  try {
    chat = await startChat(await buildChat(tmp), ['-socketio-client', SIO_BUNDLE]);
    console.log(`chat server pid ${chat.child.pid} on ${chat.url}, Socket.IO page at /socketio`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS, timeout: WAIT_MS });
    // What each page asks the server for: polling requests and WebSockets.
    const seen = { alice: { requests: [], sockets: [] }, bob: { requests: [], sockets: [] } };
    const open = async (user) => {
      const ctx = await browser.newContext({ viewport: { width: 820, height: 760 } });
      ctx.setDefaultTimeout(WAIT_MS);
      ctx.setDefaultNavigationTimeout(WAIT_MS);
      ctx.on('request', (r) => seen[user].requests.push(r.url()));
      ctx.on('page', (p) => p.on('websocket', (ws) => seen[user].sockets.push(ws.url())));
      return login(ctx, chat.url, user, problems, '/socketio');
    };
    const alice = await open('alice');
    const bob = await open('bob');
    assert.equal(await alice.title(), 'wsgate chat (Socket.IO)');

    const stamp = Date.now().toString(36);
    await alice.fill('#content', `over Socket.IO <i>at</i> ${stamp}`);
    const shown = `over Socket.IO at ${stamp}`;
    await bob.waitForFunction(() => document.getElementById('typing').textContent === 'alice typing…');
    await alice.click('#compose button[type=submit]');
    await bob.waitForFunction((text) => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === text), shown);
    await alice.waitForFunction((text) => [...document.querySelectorAll('#messages li')]
      .some((li) => li.querySelector('.text')?.textContent === text && li.querySelector('.read')?.textContent === 'read by bob'), shown);
    assert.equal(await alice.inputValue('#content'), '', 'the input is cleared after the ack');
    // Bob answers: the other way round, on the same sessions.
    const reply = `hi alice ${stamp}`;
    await bob.fill('#content', reply);
    await bob.click('#compose button[type=submit]');
    await alice.waitForFunction((text) => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === text), reply);
    for (const [name, page] of [['alice', alice], ['bob', bob]]) {
      assert.deepEqual(await messages(page), [shown, reply], `${name}'s conversation`);
    }
    console.log(`alice and bob chatted over Socket.IO (${Date.now() - t0} ms)`);

    for (const user of ['alice', 'bob']) {
      const { requests, sockets } = seen[user];
      assert.ok(requests.some((u) => u.includes('/socket.io/?EIO=4&transport=polling')), `${user}: polling first`);
      assert.ok(sockets.length > 0 && sockets.every((u) => u.includes('/socket.io/?EIO=4&transport=websocket')),
        `${user}: upgraded to /socket.io/ WebSockets only: ${sockets}`);
      assert.ok(!requests.some((u) => new URL(u).pathname === '/ws'), `${user}: never the wsgate.v1 endpoint`);
    }

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'chat-socketio.png');
    await alice.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
    assert.deepEqual(problems, [], 'the chat pages reported errors');
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (chat) await stop(chat.child);
    rmSync(tmp, { recursive: true, force: true });
  }
});
