// The socketio-node contender of the comparison: the Node.js Socket.IO 4
// server as its users run it, one process, doing the benchmark's job the
// way a NestJS or plain Socket.IO gateway does it:
//
//   - the JWT (HS256, the bench's secret) from the CONNECT auth payload
//     ({token}) verified in an io.use middleware with jsonwebtoken, as
//     @nestjs/jwt does;
//   - every connection joins the room "bench" on connection;
//   - a broadcast is io.to("bench").emit("bench", {bts, seq, pad});
//   - the event "echo" is answered through its ack callback.
//
// Everything else is Socket.IO's default (both transports, pingInterval
// 25 s, pingTimeout 20 s, maxHttpBufferSize 1 MB, no compression, no CORS).
//
// Beside /socket.io/ it serves the control API of bench/cmd/server, with
// the same JSON fields:
//
//   GET /bench/stats[?gc=1]              VmRSS, V8 heap, CPU time, connections
//   GET /bench/broadcast?seq=&ts=&pad=   one broadcast to the room
//
// It listens on 127.0.0.1 (-listen host:port, port 0 by default), prints
// "ADDR host:port" on stdout once it serves, and reads the JWT secret from
// the environment (BENCH_JWT_SECRET): without it, it refuses to start
// rather than fall back to a secret of its own.
//
// Run by the load generator as: node --expose-gc server.mjs [-listen 127.0.0.1:0]
// (the loadgen's tests also set BENCH_PING_INTERVAL_MS and
// BENCH_PING_TIMEOUT_MS, to see pings answered without waiting 25 s).
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { Server } from "socket.io";
import jwt from "jsonwebtoken";

const ROOM = "bench";

const secret = process.env.BENCH_JWT_SECRET;
if (!secret) {
  console.error("server.mjs: BENCH_JWT_SECRET is not set");
  process.exit(2);
}

let listen = "127.0.0.1:0";
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === "-listen" && i + 1 < process.argv.length) listen = process.argv[++i];
}
const cut = listen.lastIndexOf(":");
const host = listen.slice(0, cut);
const port = Number(listen.slice(cut + 1));
if (!["127.0.0.1", "localhost", "::1", "[::1]"].includes(host) || !Number.isInteger(port)) {
  console.error(`server.mjs: -listen must be a loopback address, got ${JSON.stringify(listen)}`);
  process.exit(2);
}

const httpServer = createServer(control);
const io = new Server(httpServer, heartbeat());

// heartbeat is Socket.IO's default unless the environment shortens it.
function heartbeat() {
  const opts = {};
  for (const [env, key] of [["BENCH_PING_INTERVAL_MS", "pingInterval"], ["BENCH_PING_TIMEOUT_MS", "pingTimeout"]]) {
    const v = process.env[env];
    if (v === undefined) continue;
    if (!/^\d+$/.test(v) || Number(v) < 1) {
      console.error(`server.mjs: ${env} must be a positive number of milliseconds, got ${JSON.stringify(v)}`);
      process.exit(2);
    }
    opts[key] = Number(v);
  }
  return opts;
}

io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (typeof token !== "string" || token === "") {
    next(new Error("Authentication required"));
    return;
  }
  try {
    const claims = jwt.verify(token, secret, { algorithms: ["HS256"], clockTolerance: 10 });
    if (typeof claims.sub !== "string" || claims.sub === "" || typeof claims.exp !== "number") {
      throw new Error("subject and expiry required");
    }
    socket.data.userId = claims.sub;
    next();
  } catch {
    next(new Error("Invalid token"));
  }
});

io.on("connection", (socket) => {
  socket.join(ROOM);
  socket.on("echo", (data, ack) => {
    if (typeof ack === "function") ack(data);
  });
});

// control answers the load generator's requests; Socket.IO takes /socket.io/
// before this handler sees anything.
function control(req, res) {
  const url = new URL(req.url, "http://" + listen);
  switch (url.pathname) {
    case "/bench/stats":
      sendJSON(res, stats(url.searchParams.get("gc") === "1"));
      return;
    case "/bench/broadcast":
      broadcast(url.searchParams, res);
      return;
  }
  res.writeHead(404).end();
}

function sendJSON(res, value) {
  res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(value) + "\n");
}

function stats(gc) {
  const rssRaw = vmRSS();
  if (gc && typeof global.gc === "function") {
    // A full, synchronous collection: the counterpart of the Go servers'
    // runtime.GC; V8 has no FreeOSMemory, it returns pages on its own.
    global.gc();
  }
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    conns: roomSize(),
    rss: vmRSS(),
    rss_raw: rssRaw,
    heap_inuse: mem.heapUsed,
    heap_alloc: mem.heapUsed,
    stack_inuse: 0,
    sys: mem.rss,
    goroutines: 0,
    cpu_ns: (cpu.user + cpu.system) * 1000,
    total_alloc: 0,
    runtime: "node " + process.version,
  };
}

function roomSize() {
  const members = io.of("/").adapter.rooms.get(ROOM);
  return members ? members.size : 0;
}

// vmRSS reads the resident set size from /proc/self/status, as the Go
// servers do, in bytes.
function vmRSS() {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

const pads = new Map();

function broadcast(q, res) {
  const seq = Number(q.get("seq"));
  const pad = Number(q.get("pad") || 0);
  if (!/^\d+$/.test(q.get("seq") || "") || seq > 0xffffffff) {
    res.writeHead(400).end("seq\n");
    return;
  }
  if (!Number.isInteger(pad) || pad < 0 || pad > 1 << 16) {
    res.writeHead(400).end("pad\n");
    return;
  }
  // The send time in unix nanoseconds does not fit a double exactly: it
  // arrives rounded to a multiple of 256 ns, far below what is measured.
  let ts = Number(q.get("ts"));
  if (!Number.isFinite(ts) || ts <= 0) ts = Date.now() * 1e6;
  let p = pads.get(pad);
  if (p === undefined) {
    p = "x".repeat(pad);
    pads.set(pad, p);
  }
  io.to(ROOM).emit("bench", { bts: ts, seq, pad: p });
  res.writeHead(204).end();
}

httpServer.listen(port, host.replace(/^\[|\]$/g, ""), () => {
  const a = httpServer.address();
  const h = a.family === "IPv6" ? `[${a.address}]` : a.address;
  process.stdout.write(`ADDR ${h}:${a.port}\n`);
});
