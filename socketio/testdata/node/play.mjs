// Plays a transcript of raw Engine.IO / Socket.IO frames against a server
// and prints every frame and HTTP answer received, normalised, as JSON, so
// that the same transcript run against the Node reference server and
// against wsgate can be compared.
//
//   node play.mjs <url> <transcript.json>             print the record
//   node play.mjs --check <url> <transcript.json>...  compare each record
//                                                     with expected/<name>.json
//   node play.mjs --check --expected <dir> <url> <transcript.json>...
//                                                     ... with <dir>/<name>.json
//
// A transcript is {"path": "/socket.io/", "steps": [...]}; each step does
// one thing (the field names are the actions):
//
//   {"handshake": "polling"}      GET ?EIO=4&transport=polling, keeps the sid
//   {"handshake": "websocket"}    opens a WebSocket without a sid
//   {"upgrade": true}             opens a WebSocket with the session's sid
//   {"get": true}                 GET with the sid, waits for the answer
//   {"getAsync": "p1"}            starts a GET, {"await": "p1"} records it
//   {"post": "40"}                POST a payload ("\u001e" separates packets)
//   {"http": {"method": "GET", "query": "?EIO=4"}}   any request, recorded
//   {"send": "40"}                sends a text frame
//   {"sendBinary": "AQID"}        sends a binary frame (base64)
//   {"recv": 2}                   waits for and records 2 frames
//   {"expectClose": true}         waits for the WebSocket to close
//   {"close": true}               closes the WebSocket
//   {"sleep": 50}                 waits, where nothing can be awaited (a held
//                                 GET reaching the server, a heartbeat timeout)
//
// WebSocket steps take "as": "<name>" to use a second socket. With
// "autoPong" (default true) server pings ("2") are answered with "3" and
// left out of the record, on both transports, so that the record does not
// depend on timing. Session ids (the Engine.IO sid of the open packet, the
// Socket.IO sid of a CONNECT answer, the pid) become <eio-sid-1>,
// <sio-sid-1>, <pid-1>... in order of appearance. Every wait is bounded
// ("timeout" per transcript, default 3000 ms); a timeout is recorded and
// ends the transcript.
import { readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";

const SEP = "\x1e";

class Normaliser {
  constructor() {
    this.ids = new Map();
    this.counts = { "eio-sid": 0, "sio-sid": 0, pid: 0 };
  }
  learn(text) {
    const kind = text.startsWith("0{") ? "eio-sid" : "sio-sid";
    for (const [, key, value] of text.matchAll(/"(sid|pid)":"([^"]*)"/g)) {
      if (!this.ids.has(value)) {
        const k = key === "pid" ? "pid" : kind;
        this.ids.set(value, `<${k}-${++this.counts[k]}>`);
      }
    }
  }
  apply(text) {
    this.learn(text);
    let out = text;
    for (const [id, name] of this.ids) out = out.split(id).join(name);
    return out;
  }
}

class Player {
  constructor(base, transcript) {
    const url = new URL(transcript.path || "/socket.io/", base);
    this.http = url.href;
    this.ws = url.href.replace(/^http/, "ws");
    this.timeout = transcript.timeout || 3000;
    this.autoPong = transcript.autoPong !== false;
    this.norm = new Normaliser();
    this.record = [];
    this.sockets = new Map();
    this.pending = new Map();
    this.sid = null;
  }

  url(base, query) {
    return `${base}?EIO=4&${query}`;
  }

  async run(steps) {
    for (const step of steps) {
      try {
        await this.step(step);
      } catch (e) {
        this.record.push({ error: String(e.message || e) });
        break;
      }
    }
    for (const s of this.sockets.values()) s.ws.terminate();
    return this.record;
  }

  async step(s) {
    if (s.handshake === "polling") {
      const { status, body } = await this.fetch("GET", this.url(this.http, "transport=polling"));
      if (status === 200 && body.startsWith("0")) this.sid = JSON.parse(body.slice(1)).sid;
      return this.push({ http: "GET handshake", status, body });
    }
    if (s.handshake === "websocket") return this.open(s.as, this.url(this.ws, "transport=websocket"));
    if (s.upgrade) return this.open(s.as, this.url(this.ws, `transport=websocket&sid=${this.sid}`));
    if (s.get) return this.push({ http: "GET", ...(await this.poll()) });
    if (s.getAsync) return void this.pending.set(s.getAsync, this.poll());
    if (s.await) return this.push({ http: "GET", ...(await this.bounded(this.pending.get(s.await), "GET")) });
    if (s.post !== undefined) {
      const r = await this.fetch("POST", this.url(this.http, `transport=polling&sid=${this.sid}`), s.post);
      return this.push({ http: "POST", ...r });
    }
    if (s.http) {
      const query = s.http.query.replace("{sid}", this.sid);
      const r = await this.fetch(s.http.method, this.http + query, s.http.body);
      return this.push({ http: `${s.http.method} ${query.replace(this.sid, "{sid}")}`, ...r });
    }
    if (s.send !== undefined) return this.socket(s.as).ws.send(s.send);
    if (s.sendBinary !== undefined) return this.socket(s.as).ws.send(Buffer.from(s.sendBinary, "base64"));
    if (s.recv) {
      for (let i = 0; i < s.recv; i++) this.push(await this.bounded(this.socket(s.as).next(), "frame"));
      return;
    }
    if (s.expectClose) return this.push(await this.bounded(this.socket(s.as).closed, "close"));
    if (s.close) return this.socket(s.as).ws.close();
    if (s.sleep) return new Promise((r) => setTimeout(r, Math.min(s.sleep, this.timeout)));
    throw new Error(`unknown step ${JSON.stringify(s)}`);
  }

  push(entry) {
    for (const k of ["body", "recv"]) if (typeof entry[k] === "string") entry[k] = this.norm.apply(entry[k]);
    this.record.push(entry);
  }

  bounded(promise, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout waiting for ${what}`)), this.timeout);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  async fetch(method, url, body) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.timeout);
    try {
      const res = await fetch(url, { method, body, signal: ctl.signal });
      return { status: res.status, body: await res.text() };
    } finally {
      clearTimeout(timer);
    }
  }

  // poll GETs with the sid; with autoPong, pings are answered and removed,
  // and a GET that held only pings is repeated (a bounded number of times).
  async poll() {
    const url = this.url(this.http, `transport=polling&sid=${this.sid}`);
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = await this.fetch("GET", url);
      if (r.status !== 200 || !this.autoPong) return r;
      const packets = r.body.split(SEP);
      const kept = packets.filter((p) => p !== "2");
      if (kept.length < packets.length) await this.fetch("POST", url, "3");
      if (kept.length > 0) return { status: r.status, body: kept.join(SEP) };
    }
    throw new Error("only pings for 5 polls");
  }

  socket(name = "ws") {
    const s = this.sockets.get(name);
    if (!s) throw new Error(`no socket ${name}`);
    return s;
  }

  open(name = "ws", url) {
    const ws = new WebSocket(url);
    const frames = [];
    const waiters = [];
    const s = { ws, next: () => (frames.length ? Promise.resolve(frames.shift()) : new Promise((r) => waiters.push(r))) };
    const deliver = (f) => (waiters.length ? waiters.shift()(f) : frames.push(f));
    ws.on("message", (data, isBinary) => {
      if (isBinary) return deliver({ recvBinary: Buffer.from(data).toString("base64") });
      const text = data.toString();
      if (this.autoPong && text === "2") return ws.send("3");
      deliver({ recv: text });
    });
    s.closed = new Promise((resolve) => ws.on("close", (code) => resolve({ closed: true, code })));
    ws.on("error", () => {}); // the close event follows
    this.sockets.set(name, s);
    return this.bounded(
      new Promise((resolve) => {
        ws.on("open", () => resolve(this.push({ ws: "open" })));
        ws.on("unexpected-response", (req, res) => {
          resolve(this.push({ ws: "refused", status: res.statusCode }));
          req.destroy();
        });
      }),
      "WebSocket open",
    );
  }
}

async function play(url, file) {
  const transcript = JSON.parse(readFileSync(file, "utf8"));
  return new Player(url, transcript).run(transcript.steps);
}

const args = process.argv.slice(2);
if (args[0] === "--check") {
  let rest = args.slice(1);
  let expectedDir = join(dirname(fileURLToPath(import.meta.url)), "expected");
  if (rest[0] === "--expected") {
    expectedDir = rest[1];
    rest = rest.slice(2);
  }
  const [url, ...files] = rest;
  let failed = 0;
  for (const file of files) {
    const got = JSON.stringify(await play(url, file), null, 1);
    const expectedFile = join(expectedDir, basename(file));
    const want = JSON.stringify(JSON.parse(readFileSync(expectedFile, "utf8")), null, 1);
    if (got === want) {
      console.log(`ok   ${basename(file)}`);
    } else {
      failed++;
      console.log(`FAIL ${basename(file)}\n--- got\n${got}\n--- want\n${want}`);
    }
  }
  process.exit(failed ? 1 : 0);
} else if (args.length === 2) {
  console.log(JSON.stringify(await play(args[0], args[1]), null, 1));
} else {
  console.error("usage: node play.mjs <url> <transcript.json> | node play.mjs --check [--expected <dir>] <url> <transcript.json>...");
  process.exit(2);
}
