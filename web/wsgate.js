// wsgate browser client: the wsgate.v1 wire protocol (docs/PROTOCOL.md) in
// one dependency-free ES module. It is the browser counterpart of the Go
// package github.com/wsgate/wsgate/client and follows the same reconnect
// policy. Serve it with web.Handler() and import it from a module script:
//
//   import { WsgateClient } from '/static/wsgate.js';
//
// SPDX-License-Identifier: MIT

/**
 * The browser client of the wsgate.v1 protocol.
 *
 * ```js
 * const client = new WsgateClient('/ws', {
 *   onEvent: ({ event, room, data }) => render(event, data),
 *   onState: (s) => status(s.phase),
 * });
 * await client.connect();                 // the first welcome
 * await client.join('conversation:42');   // rejoined after every reconnect
 * const reply = await client.call('message:send', { conversationId: '42', content: 'hi' });
 * client.emit('typing:start', { conversationId: '42' }); // no answer wanted
 * ```
 *
 * Credentials: with neither `token` nor `tokenProvider` the browser's cookies
 * authenticate the handshake (the server must name its cookie and run an
 * origin allowlist). Otherwise the token travels as a `wsgate.bearer.<jwt>`
 * entry of `Sec-WebSocket-Protocol` (browsers cannot set headers), or, with
 * `tokenVia: 'message'`, in the first message.
 *
 * Reconnecting follows docs/PROTOCOL.md's close-code table, with
 * exponential backoff and full jitter (see {@link backoffDelay} and
 * {@link reconnectPolicy}). Browsers hide the HTTP status of a refused
 * handshake (401, 403, 429, 503 all look like close code 1006), so such
 * refusals are retried with backoff like a network loss: set `maxAttempts`
 * to give up.
 *
 * History: in the rooms whose history the server keeps, every event carries
 * its position, and the client keeps the last one of each room. After a
 * reconnect it rejoins those rooms, and its automatic rooms, with it: the
 * server sends what was missed, all of it or none, and `onRecovery` says
 * which, per room. A room's events are held back while it is recovered, so
 * the application gets each event once, in order, live or recovered.
 *
 * Heartbeats: the browser answers the server's pings by itself and shows
 * them to no script, so this client has no watchdog of its own; the server
 * closes a dead peer after its pong timeout, and a dead path reaches the
 * page as a 1006 close when the browser's network stack notices it.
 *
 * @module wsgate
 */

/** The subprotocol every wsgate.v1 client offers and the server selects. */
export const SUBPROTOCOL = 'wsgate.v1';

/** Prefix of the `Sec-WebSocket-Protocol` entry that carries a bearer token. */
export const BEARER_PREFIX = 'wsgate.bearer.';

/** The largest message id (2^53 − 1): ids are exact in every JSON peer. */
export const MAX_ID = Number.MAX_SAFE_INTEGER;

/** The longest token the server accepts, in characters. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** Close codes of docs/PROTOCOL.md. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4001,
  IDLE: 4002,
  TOKEN_EXPIRED: 4003,
  SLOW_CONSUMER: 4008,
  CONNECTION_LIMIT: 4029,
});

/**
 * Codes of {@link WsgateError}. The server's error codes (docs/PROTOCOL.md)
 * come from error frames (`server: true`); the others are this client's.
 */
export const ErrorCode = Object.freeze({
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  UNKNOWN_EVENT: 'UNKNOWN_EVENT',
  RATE_LIMITED: 'RATE_LIMITED',
  FORBIDDEN: 'FORBIDDEN',
  ROOM_LIMIT_EXCEEDED: 'ROOM_LIMIT_EXCEEDED',
  UNAUTHORIZED: 'UNAUTHORIZED',
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  /** No answer within the ack timeout (or the server's handler deadline): the outcome is unknown. */
  TIMEOUT: 'TIMEOUT',
  INTERNAL: 'INTERNAL',
  /** Client: the arguments are invalid; nothing was sent. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** Client: no connection within the ack timeout; nothing was sent. */
  NOT_CONNECTED: 'NOT_CONNECTED',
  /** Client: the connection dropped after the message was sent and before its answer. */
  DISCONNECTED: 'DISCONNECTED',
  /** Client: the client stopped (close(), or a cause that forbids reconnecting). */
  CLOSED: 'CLOSED',
  /** Client: the peer does not speak wsgate.v1. */
  PROTOCOL: 'PROTOCOL',
  /** Client: `maxAttempts` reconnect attempts in a row failed. */
  MAX_ATTEMPTS: 'MAX_ATTEMPTS',
  /** Client: the server closed an established connection with 4001: it logged the user out (the state's reason says why). Final. */
  LOGGED_OUT: 'LOGGED_OUT',
  /** Client: the token provider failed or returned no token. */
  TOKEN_PROVIDER: 'TOKEN_PROVIDER',
});

/**
 * An error with a protocol code: what a call, join, leave or refresh rejects
 * with, and what `onError` receives.
 */
export class WsgateError extends Error {
  /**
   * @param {string} code one of {@link ErrorCode}
   * @param {string} message generic text; details stay in the server's log
   * @param {{server?: boolean, closeCode?: number, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'WsgateError';
    /** @type {string} */
    this.code = code;
    /** True when an error frame of the server said so. @type {boolean} */
    this.server = Boolean(extra.server);
    /** The close code involved, when a closed connection is the reason. @type {number|undefined} */
    this.closeCode = extra.closeCode;
  }
}

/**
 * @typedef {object} BackoffOptions
 * @property {number} [minMs=500] the first attempt's window
 * @property {number} [maxMs=30000] the cap of the window; a connection that
 *   stayed up at least this long restarts the sequence
 * @property {number} [multiplier=2] growth of the window per attempt, ≥ 1
 */

/**
 * The upper bound of reconnect attempt `attempt`'s wait (from 0):
 * min(maxMs, minMs · multiplier^attempt).
 * @param {number} attempt
 * @param {Required<BackoffOptions>} backoff
 * @returns {number} milliseconds
 */
export function backoffWindow(attempt, backoff) {
  const w = backoff.minMs * backoff.multiplier ** attempt;
  return Number.isFinite(w) && w < backoff.maxMs ? w : backoff.maxMs;
}

/**
 * Full jitter: attempt `attempt` waits a uniformly random time in
 * [0, backoffWindow(attempt)), so clients dropped together come back spread
 * over the window instead of in one burst.
 * @param {number} attempt
 * @param {Required<BackoffOptions>} backoff
 * @param {() => number} [random=Math.random] a source in [0, 1)
 * @returns {number} whole milliseconds
 */
export function backoffDelay(attempt, backoff, random = Math.random) {
  const w = backoffWindow(attempt, backoff);
  if (!(w > 0)) return 0;
  return Math.min(Math.floor(random() * w), Math.ceil(w) - 1);
}

/** The wait after a 1008 (policy violation): "at least 10 s". */
export const POLICY_VIOLATION_WAIT_MS = 10_000;

/** The wait after a 4029 (connection limit), the server's Retry-After for that limit. */
export const CONNECTION_LIMIT_WAIT_MS = 30_000;

/**
 * @typedef {object} Policy
 * @property {'stop'|'backoff'|'restart'|'idle'|'credential'} action
 *   stop: never reconnect (a client bug). backoff: after `floorMs` plus the
 *   jittered backoff. restart: the server is restarting (1012): at once
 *   with jitter, the backoff sequence restarted. idle: when the application
 *   next needs the connection. credential: only with a different token
 *   than the refused one (never in cookie mode).
 * @property {number} floorMs waited before the jittered backoff
 */

/**
 * What to do after a connection closed with `code`, per docs/PROTOCOL.md.
 * @param {number} code a WebSocket close code
 * @returns {Policy}
 */
export function reconnectPolicy(code) {
  switch (code) {
    case CloseCode.PROTOCOL_ERROR: // 1002: a frame RFC 6455 forbids
    case CloseCode.UNSUPPORTED_DATA: // 1003: a binary frame
    case CloseCode.INVALID_PAYLOAD: // 1007: invalid UTF-8
    case CloseCode.MESSAGE_TOO_BIG: // 1009: over the size limit
      // This client sent something the server refuses; it would again.
      return { action: 'stop', floorMs: 0 };
    case CloseCode.POLICY_VIOLATION:
      return { action: 'backoff', floorMs: POLICY_VIOLATION_WAIT_MS };
    case CloseCode.SERVICE_RESTART:
      return { action: 'restart', floorMs: 0 };
    case CloseCode.UNAUTHORIZED:
    case CloseCode.TOKEN_EXPIRED:
      return { action: 'credential', floorMs: 0 };
    case CloseCode.IDLE:
      return { action: 'idle', floorMs: 0 };
    case CloseCode.CONNECTION_LIMIT:
      return { action: 'backoff', floorMs: CONNECTION_LIMIT_WAIT_MS };
    default:
      // 1000, 1001, 1006 (network loss, heartbeat timeout, a refused
      // handshake), 1011, 1013, 4008 and anything else: back off, retry.
      return { action: 'backoff', floorMs: 0 };
  }
}

/**
 * The message id after `prev`: 1, 2, … up to {@link MAX_ID}, then 1 again.
 * @param {number} prev
 * @returns {number}
 */
export function nextId(prev) {
  return prev >= MAX_ID || !(prev >= 0) ? 1 : Math.floor(prev) + 1;
}

const EVENT_NAME = /^[A-Za-z0-9:._-]{1,64}$/;
const ROOM_KIND = /^[a-z][a-z0-9_-]{0,31}$/;
const ROOM_ARG_BYTE = /^[A-Za-z0-9._~@+-]$/;
const UPPER_HEX = /^[0-9A-F]{2}$/;

/**
 * Whether `name` is a valid event name: 1–64 characters of A-Z a-z 0-9 : . _ -
 * @param {unknown} name
 * @returns {boolean}
 */
export function validEventName(name) {
  return typeof name === 'string' && EVENT_NAME.test(name);
}

/**
 * Whether `name` is a valid room name: `kind` or `kind:arg`, at most 128
 * characters (docs/PROTOCOL.md). An argument byte outside
 * `A-Z a-z 0-9 . _ ~ @ + -` is written `%XX` (upper-case hexadecimal), and
 * only such a byte: the server's spelling of user and tenant ids like
 * `auth0|1` (`user:auth0%7C1`).
 * @param {unknown} name
 * @returns {boolean}
 */
export function validRoomName(name) {
  if (typeof name !== 'string' || name.length === 0 || name.length > 128) return false;
  const colon = name.indexOf(':');
  if (!ROOM_KIND.test(colon < 0 ? name : name.slice(0, colon))) return false;
  if (colon < 0) return true;
  const arg = name.slice(colon + 1);
  if (arg === '') return false;
  for (let i = 0; i < arg.length; i++) {
    if (ROOM_ARG_BYTE.test(arg[i])) continue;
    const hex = arg.slice(i + 1, i + 3);
    if (arg[i] !== '%' || !UPPER_HEX.test(hex)) return false;
    if (ROOM_ARG_BYTE.test(String.fromCharCode(parseInt(hex, 16)))) return false; // one spelling per name
    i += 2;
  }
  return true;
}

/**
 * Encodes a client envelope. `data` is JSON text already (encoded once, when
 * the call was made), or undefined.
 * @param {{type: string, event?: string, room?: string, data?: string}} frame
 * @param {number} [id]
 * @returns {string}
 */
export function encodeFrame(frame, id) {
  /** @type {Record<string, unknown>} */
  const head = { type: frame.type };
  if (id !== undefined) head.id = id;
  if (frame.event !== undefined) head.event = frame.event;
  if (frame.room !== undefined) head.room = frame.room;
  const s = JSON.stringify(head);
  return frame.data === undefined ? s : `${s.slice(0, -1)},"data":${frame.data}}`;
}

/**
 * Encodes event data once, up front, so that a value JSON cannot represent
 * fails the call instead of a later write. undefined and null mean no data.
 * @param {unknown} data
 * @returns {string|undefined}
 */
function encodeData(data) {
  if (data === undefined || data === null) return undefined;
  let s;
  try {
    s = JSON.stringify(data);
  } catch (err) {
    throw new WsgateError(ErrorCode.INVALID_ARGUMENT, `data cannot be encoded as JSON: ${err.message}`);
  }
  return s === undefined || s === 'null' ? undefined : s;
}

/**
 * Turns a relative or http(s) URL into the ws(s) URL of the hub.
 * @param {string|URL} url
 * @returns {string}
 */
export function resolveURL(url) {
  const u = new URL(String(url), globalThis.location?.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new WsgateError(ErrorCode.INVALID_ARGUMENT, `URL scheme ${u.protocol} is not ws: or wss:`);
  }
  u.hash = '';
  return u.href;
}

/**
 * @typedef {object} ClientOptions
 * @property {string} [token] a JWT, sent with every connection attempt until
 *   refresh() replaces it
 * @property {() => (string|Promise<string>)} [tokenProvider] returns the
 *   token; called for every connection attempt, so it can hand out a fresh
 *   one after an expiry. Takes precedence over `token`.
 * @property {'subprotocol'|'message'} [tokenVia='subprotocol'] how the token
 *   travels: a `wsgate.bearer.<jwt>` subprotocol entry, or the first message
 *   (the server must enable first-message auth)
 * @property {string[]} [protocols] more subprotocols to offer after wsgate.v1
 * @property {number} [ackTimeoutMs=10000] bounds call, join, leave and
 *   refresh, waiting for a connection included
 * @property {number} [dialTimeoutMs=10000] bounds one attempt, from the
 *   token provider to the welcome
 * @property {BackoffOptions} [backoff] spaces reconnect attempts
 * @property {number} [maxAttempts=0] stop after this many failed attempts
 *   in a row; 0 means never stop
 * @property {(event: WsgateEvent) => void} [onEvent] the server's events
 * @property {(error: WsgateError) => void} [onError] error frames that answer
 *   no particular message (such as RATE_LIMITED for an emit)
 * @property {(state: WsgateState) => void} [onState] every state change
 * @property {(recovery: Recovery) => void} [onRecovery] what came of each
 *   recovery of a room whose history the server keeps: after a reconnect
 *   for every room the client is in (its automatic rooms too), after a
 *   join of a room it has a position for, and when the server reports a
 *   gap it could not fill. In order with the events: after the missed
 *   events of a room that recovered, before the next event of one that did
 *   not (`recovered: false`: reload the room's state).
 * @property {typeof WebSocket} [WebSocket] the WebSocket class (tests)
 * @property {() => number} [random] the jitter's source in [0, 1) (tests)
 */

/**
 * @typedef {object} WsgateEvent
 * @property {string} event the event name
 * @property {string} [room] the room it came through
 * @property {unknown} data the payload, undefined when there is none
 * @property {Position} [position] its place in the room's stream, for a
 *   room whose history the server keeps
 */

/**
 * A place in a room's stream: events are numbered 1, 2, 3… within an
 * epoch, which changes when the server could not keep the numbering going.
 * @typedef {object} Position
 * @property {number} offset
 * @property {string} epoch
 */

/**
 * @typedef {object} Recovery
 * @property {string} room
 * @property {boolean} recovered every missed event was delivered (missed of
 *   them, before this report); false: some are lost, reload the room
 * @property {number} missed how many missed events were delivered
 * @property {Position} [position] the room's position after it, when known
 * @property {WsgateError} [error] the server refused to rejoin the room
 */

/**
 * @typedef {object} Welcome
 * @property {string} connectionId
 * @property {string} userId
 * @property {number} expiresAt Unix seconds, 0 = never
 * @property {number} heartbeatMs
 * @property {Record<string, Position>} positions the tops of the automatic
 *   rooms whose history the server keeps
 */

/**
 * @typedef {object} WsgateState
 * @property {'connecting'|'connected'|'reconnecting'|'idle'|'closed'} phase
 *   connecting: the first attempt; connected: welcome received and rooms
 *   rejoined; reconnecting: an attempt follows after delayMs; idle: closed
 *   for idleness (4002), back when next needed; closed: final.
 * @property {Welcome} [welcome] connected
 * @property {{room: string, code: string}[]} [lostRooms] connected: rooms the
 *   server refused to rejoin, now forgotten
 * @property {number} [attempt] reconnecting: the number of the attempt that
 *   follows, counted since the last connection (the first connect was 1)
 * @property {number} [delayMs] reconnecting: the wait before the attempt
 * @property {number} [code] why: the close code (1006 when no close frame
 *   came: network loss, a refused handshake, a dial timeout)
 * @property {string} [reason] the close reason, or the `bye` reason that came before
 * @property {WsgateError} [error] why (reconnecting, idle, closed); none after close()
 */

const DEFAULTS = {
  ackTimeoutMs: 10_000,
  dialTimeoutMs: 10_000,
  backoff: { minMs: 500, maxMs: 30_000, multiplier: 2 },
};

/** The pause after the server rate-limited a rejoin (its join bucket refills meanwhile). */
const REJOIN_RATE_LIMIT_WAIT_MS = 1000;

const OPEN = 1;

/** @param {number} v @param {string} name */
function nonNegative(v, name) {
  if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) {
    throw new WsgateError(ErrorCode.INVALID_ARGUMENT, `${name} must be a finite number ≥ 0`);
  }
  return v;
}

/** @param {ClientOptions} o */
function normalize(o) {
  const b = { ...DEFAULTS.backoff, ...(o.backoff || {}) };
  nonNegative(b.minMs, 'backoff.minMs');
  nonNegative(b.maxMs, 'backoff.maxMs');
  if (b.maxMs < b.minMs) throw new WsgateError(ErrorCode.INVALID_ARGUMENT, 'backoff.maxMs is below backoff.minMs');
  if (!(b.multiplier >= 1) || !Number.isFinite(b.multiplier)) {
    throw new WsgateError(ErrorCode.INVALID_ARGUMENT, 'backoff.multiplier must be ≥ 1');
  }
  const via = o.tokenVia ?? 'subprotocol';
  if (via !== 'subprotocol' && via !== 'message') {
    throw new WsgateError(ErrorCode.INVALID_ARGUMENT, `tokenVia must be 'subprotocol' or 'message'`);
  }
  if (o.token !== undefined) checkToken(o.token);
  if (o.tokenProvider !== undefined && typeof o.tokenProvider !== 'function') {
    throw new WsgateError(ErrorCode.INVALID_ARGUMENT, 'tokenProvider must be a function');
  }
  const protocols = [...(o.protocols || [])];
  for (const p of protocols) {
    if (typeof p !== 'string' || p === SUBPROTOCOL || p.startsWith(BEARER_PREFIX)) {
      throw new WsgateError(ErrorCode.INVALID_ARGUMENT, `protocols: ${p} is not an extra subprotocol`);
    }
  }
  const WS = o.WebSocket ?? globalThis.WebSocket;
  if (typeof WS !== 'function') throw new WsgateError(ErrorCode.INVALID_ARGUMENT, 'no WebSocket class');
  return {
    tokenProvider: o.tokenProvider,
    tokenVia: via,
    protocols,
    ackTimeoutMs: nonNegative(o.ackTimeoutMs ?? DEFAULTS.ackTimeoutMs, 'ackTimeoutMs'),
    dialTimeoutMs: nonNegative(o.dialTimeoutMs ?? DEFAULTS.dialTimeoutMs, 'dialTimeoutMs'),
    backoff: b,
    maxAttempts: Math.floor(nonNegative(o.maxAttempts ?? 0, 'maxAttempts')),
    onEvent: o.onEvent,
    onError: o.onError,
    onState: o.onState,
    onRecovery: o.onRecovery,
    WebSocket: WS,
    random: o.random ?? Math.random,
  };
}

/** @param {unknown} token */
function checkToken(token) {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw new WsgateError(ErrorCode.INVALID_ARGUMENT, `a token is a string of 1 to ${MAX_TOKEN_LENGTH} characters`);
  }
}

/** Reports an exception thrown by an application callback without breaking the client. */
function report(err) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
  else console.error(err); // eslint-disable-line no-console
}

/**
 * Why a connection or an attempt ended.
 * @typedef {object} Cause
 * @property {number} code close code; 1006 when no close frame came
 * @property {string} reason
 * @property {WsgateError} error
 * @property {string} [token] the credential used, undefined in cookie mode
 * @property {Policy} [policy] overrides reconnectPolicy(code)
 */

/**
 * One WebSocket and the calls waiting on it.
 */
class Conn {
  /**
   * @param {WebSocket} ws
   * @param {string|undefined} token
   */
  constructor(ws, token) {
    this.ws = ws;
    this.token = token;
    /** @type {Welcome|null} */
    this.welcome = null;
    this.openedAt = 0;
    /** @type {Map<number, {resolve: (data: unknown) => void, reject: (err: WsgateError) => void}>} */
    this.pending = new Map();
    /** @type {Cause|null} */
    this.cause = null;
    this.ended = false;
    this.bye = '';
    /** @type {WsgateError|null} an error frame before the welcome */
    this.refusal = null;
    /**
     * Rooms being recovered: their events are held back until the missed
     * ones are in.
     * @type {Map<string, {since: Position, acked: boolean, left: number, missed: number, held: object[], again: boolean}>}
     */
    this.recovering = new Map();
    /** @type {string[]} automatic rooms to recover once connected */
    this.autoRecover = [];
    /** @type {(cause: Cause) => void} */
    this.resolveDone = () => {};
    /** @type {Promise<Cause>} resolves once the socket closed */
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /** @param {string} text @returns {boolean} whether it was handed to the socket */
  send(text) {
    if (this.ended || this.ws.readyState !== OPEN) return false;
    try {
      this.ws.send(text);
      return true;
    } catch {
      return false;
    }
  }

  /** Records why the connection is ending; the first reason wins. @param {Cause} cause */
  fail(cause) {
    if (!this.cause) this.cause = cause;
  }

  /** Ends the connection for `cause`; close events follow. @param {Cause} cause */
  abort(cause) {
    this.fail(cause);
    try {
      this.ws.close(CloseCode.NORMAL);
    } catch {
      // already closing
    }
  }
}

/**
 * A wsgate.v1 connection that re-establishes itself. Create it, then call
 * connect(); methods called while the client (re)connects wait for the
 * connection within the ack timeout.
 */
export class WsgateClient {
  #url;
  #o;
  /** @type {string|undefined} */
  #token;
  /** @type {Conn|null} the connection calls use */
  #conn = null;
  /** @type {Conn|null} the connection being set up */
  #dialing = null;
  /** @type {Set<string>} rooms joined by the application */
  #rooms = new Set();
  /** @type {Map<string, Position>} the position of every room with history */
  #positions = new Map();
  #seq = 0;
  /** @type {Set<{resolve: (c: Conn) => void, reject: (e: WsgateError) => void}>} */
  #waiters = new Set();
  #started = false;
  /** @type {WsgateError|null} why the client stopped */
  #stopped = null;
  /** @type {((ok: boolean) => void)|null} ends the current sleep or idle wait */
  #wakeup = null;
  #idle = false;
  /** @type {{promise: Promise<Welcome>, resolve: (w: Welcome) => void, reject: (e: WsgateError) => void}} */
  #ready;

  /**
   * @param {string|URL} url the hub's endpoint: ws(s)://, http(s):// or a
   *   path relative to the page
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.#url = resolveURL(url);
    this.#o = normalize(options);
    this.#token = options.token;
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {}); // connect() hands it out; an unobserved failure is not an error
    this.#ready = { promise, resolve, reject };
  }

  /**
   * Starts connecting (once) and resolves with the first welcome. It rejects
   * if the client stops first: close(), a terminal close code, or
   * maxAttempts failed attempts.
   * @returns {Promise<Welcome>}
   */
  connect() {
    if (this.#stopped) return Promise.reject(this.#stopped);
    if (!this.#started) {
      this.#started = true;
      this.#run().catch((err) => this.#stop({ code: CloseCode.ABNORMAL, reason: '', error: toError(err) }));
    }
    return this.#ready.promise;
  }

  /** The current connection's welcome, null while not connected. @returns {Welcome|null} */
  get welcome() {
    return this.#conn?.welcome ?? null;
  }

  /** Whether the client is connected (welcome received, rooms rejoined). */
  get connected() {
    return this.#conn !== null;
  }

  /** The rooms the client rejoins after a reconnect. @returns {string[]} */
  get rooms() {
    return [...this.#rooms].sort();
  }

  /**
   * The position of the last event of a room whose history the server
   * keeps, or the top the server gave; undefined when none is known.
   * @param {string} room
   * @returns {Position|undefined}
   */
  position(room) {
    const p = this.#positions.get(room);
    return p && { ...p };
  }

  /**
   * Sends an event without asking for an answer, if connected. Returns
   * whether it was sent: nothing is queued while disconnected (transient
   * events such as typing are stale after a reconnect). A refusal reaches
   * onError only; use call() to know the outcome.
   * @param {string} event
   * @param {unknown} [data]
   * @returns {boolean}
   */
  emit(event, data) {
    if (!validEventName(event)) {
      throw new WsgateError(ErrorCode.INVALID_ARGUMENT, 'an event name is 1-64 characters of [A-Za-z0-9:._-]');
    }
    const frame = encodeFrame({ type: 'event', event, data: encodeData(data) });
    if (this.#conn) return this.#conn.send(frame);
    this.#wakeIfIdle();
    return false;
  }

  /**
   * Sends an event and resolves with the ack's data, or rejects with a
   * {@link WsgateError}: the server's error frame (`server: true`), TIMEOUT
   * (no answer within ackTimeoutMs, waiting for a connection included),
   * NOT_CONNECTED (nothing was sent), DISCONNECTED or CLOSED. A call is
   * never replayed on the next connection.
   * @param {string} event
   * @param {unknown} [data]
   * @returns {Promise<unknown>}
   */
  call(event, data) {
    if (!validEventName(event)) {
      return Promise.reject(new WsgateError(ErrorCode.INVALID_ARGUMENT, 'an event name is 1-64 characters of [A-Za-z0-9:._-]'));
    }
    let encoded;
    try {
      encoded = encodeData(data);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#request({ type: 'event', event, data: encoded });
  }

  /**
   * Joins a room and, once the server acked, remembers it: it is rejoined
   * after every reconnect, before calls resume. Idempotent. In a room whose
   * history the server keeps, a rejoin (after a reconnect, or a join of a
   * room the client has a position for) recovers the events missed
   * meanwhile, reported to onRecovery.
   * @param {string} room
   * @returns {Promise<void>}
   */
  join(room) {
    if (!validRoomName(room)) {
      return Promise.reject(new WsgateError(ErrorCode.INVALID_ARGUMENT, `invalid room name ${JSON.stringify(room)}`));
    }
    const since = this.#positions.get(room);
    if (!since) {
      return this.#request({ type: 'join', room }, (data) => {
        this.#rooms.add(room);
        this.#joined(room, data);
      }).then(() => undefined);
    }
    // A room the client has a position for: recover what came after it.
    let conn = null;
    return this.#request(recoveryFrame(room, since), (data) => {
      this.#rooms.add(room);
      if (conn) this.#recoveryAcked(conn, room, data);
    }, (c) => {
      conn = this.#startRecovery(c, room, since) ? c : null;
    }).then(() => undefined, (err) => {
      if (conn) this.#giveUp(conn, room, err);
      throw err;
    });
  }

  /**
   * Leaves a room and forgets it at once, so it is not rejoined even if the
   * leave itself fails.
   * @param {string} room
   * @returns {Promise<void>}
   */
  leave(room) {
    if (!validRoomName(room)) {
      return Promise.reject(new WsgateError(ErrorCode.INVALID_ARGUMENT, `invalid room name ${JSON.stringify(room)}`));
    }
    this.#rooms.delete(room);
    this.#positions.delete(room);
    return this.#request({ type: 'leave', room }).then(() => undefined);
  }

  /**
   * Hands the server a new token for the same user before the current one
   * expires (in-band, the connection and its rooms stay). Once acked, it is
   * also the token of later reconnects unless a tokenProvider is set.
   * Rejects with UNAUTHORIZED or TOKEN_EXPIRED from the server.
   * @param {string} token
   * @returns {Promise<void>}
   */
  refresh(token) {
    try {
      checkToken(token);
    } catch (err) {
      return Promise.reject(err);
    }
    let conn = null;
    return this.#request({ type: 'auth', data: JSON.stringify({ token }) }, () => {
      if (!this.#o.tokenProvider) this.#token = token;
      if (conn) conn.token = token;
    }, (c) => {
      conn = c;
    }).then(() => undefined);
  }

  /**
   * Closes the connection normally (1000) and stops reconnecting. Pending
   * calls reject with CLOSED; onState gets the final 'closed'. Idempotent.
   */
  close() {
    if (this.#stopped) return;
    this.#stopped = new WsgateError(ErrorCode.CLOSED, 'the client is closed');
    this.#shutdown();
    this.#emitState({ phase: 'closed' });
  }

  // --- internals -----------------------------------------------------------

  /** The supervisor: connect, wait for the drop, reconnect by the policy. */
  async #run() {
    let attempt = 0; // position in the backoff sequence
    let tries = 0; // failed attempts since the last connection
    /** @type {Cause|null} */
    let cause = null;
    let credentialRefused = false; // the previous failure refused the credential
    this.#emitState({ phase: 'connecting' });
    for (;;) {
      /** @type {string|undefined} */
      let refused;
      if (cause) {
        const policy = cause.policy ?? reconnectPolicy(cause.code);
        if (policy.action === 'stop') return this.#stop(cause);
        if (policy.action === 'credential') {
          // Only a different credential may help: a cookie cannot be
          // changed from here, and a second refusal in a row means the
          // application has no valid one.
          if (cause.token === undefined || credentialRefused) return this.#stop(cause);
          refused = cause.token;
        }
        credentialRefused = policy.action === 'credential';
        if (this.#o.maxAttempts > 0 && tries >= this.#o.maxAttempts) {
          return this.#stop({
            ...cause,
            error: new WsgateError(ErrorCode.MAX_ATTEMPTS, `${tries} reconnect attempts failed`, {
              closeCode: cause.code,
              cause: cause.error,
            }),
          });
        }
        if (policy.action === 'restart') attempt = 0;
        if (policy.action === 'idle') {
          if (!(await this.#idleUntilNeeded(cause))) return;
        } else {
          const delayMs = policy.floorMs + backoffDelay(attempt, this.#o.backoff, this.#o.random);
          attempt++;
          this.#emitState({
            phase: 'reconnecting', attempt: tries + 1, delayMs, code: cause.code, reason: cause.reason, error: cause.error,
          });
          if (!(await this.#sleep(delayMs))) return;
        }
      }
      /** @type {Conn|null} */
      let conn = null;
      let lostRooms;
      try {
        conn = await this.#dial(refused, cause);
        lostRooms = await this.#rejoin(conn);
      } catch (err) {
        if (this.#stopped) return;
        const failed = /** @type {Cause} */ (err && err.error ? err : { code: CloseCode.ABNORMAL, reason: '', error: toError(err) });
        if (conn) {
          conn.abort(failed);
          await conn.done;
          cause = conn.cause ?? failed;
        } else {
          cause = failed;
        }
        if (this.#stopped) return;
        tries++;
        continue;
      } finally {
        this.#dialing = null;
      }
      if (this.#stopped) {
        conn.abort({ code: CloseCode.NORMAL, reason: '', error: this.#stopped });
        return;
      }
      this.#publish(conn, lostRooms);
      tries = 0;
      credentialRefused = false;
      cause = await conn.done;
      if (this.#conn === conn) this.#conn = null;
      if (this.#stopped) return;
      if (Date.now() - conn.openedAt >= this.#o.backoff.maxMs) attempt = 0;
    }
  }

  /**
   * One connection attempt: token, handshake, first-message auth, welcome.
   * @param {string|undefined} refused a token the server just refused
   * @param {Cause|null} previous why the last connection or attempt ended
   * @returns {Promise<Conn>} rejects with a Cause
   */
  async #dial(refused, previous) {
    const deadline = Date.now() + this.#o.dialTimeoutMs;
    let token = this.#token;
    if (this.#o.tokenProvider) {
      try {
        token = await withTimeout(Promise.resolve().then(() => this.#o.tokenProvider()), this.#o.dialTimeoutMs);
        checkToken(token);
      } catch (err) {
        throw {
          code: CloseCode.ABNORMAL,
          reason: '',
          error: new WsgateError(ErrorCode.TOKEN_PROVIDER, `tokenProvider: ${toError(err).message}`, { cause: err }),
          policy: { action: 'backoff', floorMs: 0 },
        };
      }
    }
    if (this.#stopped) throw { code: CloseCode.NORMAL, reason: '', error: this.#stopped };
    if (refused !== undefined && token === refused && previous) {
      // The same credential again: it would be refused again.
      throw { ...previous, policy: { action: 'stop', floorMs: 0 } };
    }
    const protocols = [SUBPROTOCOL, ...this.#o.protocols];
    if (token !== undefined && this.#o.tokenVia === 'subprotocol') protocols.push(BEARER_PREFIX + token);
    let ws;
    try {
      ws = new this.#o.WebSocket(this.#url, protocols);
    } catch (err) {
      // A SyntaxError: a token or subprotocol with characters a
      // Sec-WebSocket-Protocol entry cannot carry. It would fail again.
      throw {
        code: CloseCode.ABNORMAL,
        reason: '',
        token,
        error: new WsgateError(ErrorCode.INVALID_ARGUMENT, `WebSocket: ${toError(err).message}`, { cause: err }),
        policy: { action: 'stop', floorMs: 0 },
      };
    }
    const conn = new Conn(ws, token);
    this.#dialing = conn;
    return new Promise((resolve, reject) => {
      let frames = 0;
      const timer = setTimeout(() => {
        conn.abort({
          code: CloseCode.ABNORMAL,
          reason: 'dial timeout',
          token,
          error: new WsgateError(ErrorCode.TIMEOUT, `no welcome within ${this.#o.dialTimeoutMs} ms`),
        });
      }, Math.max(0, deadline - Date.now()));
      const protocolError = (message) => {
        conn.abort({
          code: CloseCode.PROTOCOL_ERROR,
          reason: message,
          token,
          error: new WsgateError(ErrorCode.PROTOCOL, message),
          policy: { action: 'stop', floorMs: 0 },
        });
      };
      ws.onopen = () => {
        if (ws.protocol !== SUBPROTOCOL) {
          protocolError(`the server selected subprotocol ${JSON.stringify(ws.protocol)}, not ${SUBPROTOCOL}`);
          return;
        }
        if (token !== undefined && this.#o.tokenVia === 'message') {
          this.#seq = nextId(this.#seq);
          conn.send(encodeFrame({ type: 'auth', data: JSON.stringify({ token }) }, this.#seq));
        }
      };
      ws.onerror = () => {}; // a close event follows with the code
      ws.onclose = (e) => {
        clearTimeout(timer);
        this.#ended(conn, e);
        reject(conn.cause);
      };
      ws.onmessage = (e) => {
        if (conn.welcome) {
          this.#onFrame(conn, e.data);
          return;
        }
        // Before the welcome come at most the auth ack, or an error frame
        // and a bye ahead of the close; anything longer is not wsgate.
        const f = parse(e.data);
        if (!f || ++frames > 4) {
          protocolError('the first frames are not wsgate.v1 envelopes');
          return;
        }
        switch (f.type) {
          case 'welcome': {
            const d = f.data;
            if (!d || typeof d.connectionId !== 'string' || d.connectionId === '') {
              protocolError('malformed welcome');
              return;
            }
            clearTimeout(timer);
            conn.welcome = {
              connectionId: d.connectionId,
              userId: String(d.userId ?? ''),
              expiresAt: Number(d.expiresAt) || 0,
              heartbeatMs: Number(d.heartbeatMs) || 0,
              positions: positionsOf(d.positions),
            };
            conn.openedAt = Date.now();
            // Before any later frame: the events of the automatic rooms to
            // recover are held back from here.
            this.#prepareRecoveries(conn);
            resolve(conn);
            return;
          }
          case 'ack':
            return;
          case 'error':
            // A refusal (first-message auth); the close that follows
            // decides the policy, this says why.
            conn.refusal = new WsgateError(String(f.code), String(f.message ?? ''), { server: true });
            return;
          case 'bye':
            conn.bye = String(f.data?.reason ?? '');
            return;
          default:
            protocolError(`a ${JSON.stringify(f.type)} frame before the welcome`);
        }
      };
    });
  }

  /**
   * Records the end of a connection and fails its pending calls.
   * @param {Conn} conn
   * @param {{code: number, reason: string}} e the close event
   */
  #ended(conn, e) {
    if (conn.ended) return;
    conn.ended = true;
    if (this.#conn === conn) this.#conn = null; // calls from now on wait for the next one
    const code = typeof e.code === 'number' && e.code > 0 ? e.code : CloseCode.ABNORMAL;
    const reason = conn.bye || e.reason || '';
    // 4001 after the welcome is the server disconnecting the user (a
    // logout, a revocation): final, whatever credential could be fetched.
    const loggedOut = conn.welcome && code === CloseCode.UNAUTHORIZED;
    conn.fail({
      code,
      reason,
      token: conn.token,
      ...(loggedOut && { policy: { action: 'stop', floorMs: 0 } }),
      error: loggedOut
        ? new WsgateError(ErrorCode.LOGGED_OUT, `logged out by the server${reason ? `: ${reason}` : ''}`, { closeCode: code })
        : conn.refusal ?? new WsgateError(ErrorCode.DISCONNECTED, `connection closed (${code}${reason ? `: ${reason}` : ''})`, { closeCode: code }),
    });
    const err = this.#stopped ?? new WsgateError(ErrorCode.DISCONNECTED, 'the connection was lost before the answer', { closeCode: code });
    const calls = [...conn.pending.values()];
    conn.pending.clear();
    for (const p of calls) p.reject(err);
    conn.resolveDone(conn.cause);
  }

  /**
   * Routes one frame of a live connection.
   * @param {Conn} conn
   * @param {unknown} raw
   */
  #onFrame(conn, raw) {
    if (this.#stopped) return;
    const f = parse(raw);
    if (!f) return; // not an envelope: ignored, as the Go client does
    switch (f.type) {
      case 'ack':
        this.#settle(conn, f.id, (p) => p.resolve(f.data));
        return;
      case 'error': {
        const err = new WsgateError(String(f.code), String(f.message ?? ''), { server: true });
        if (typeof f.id === 'number') {
          // It answers a call; one that gave up (timeout) hears nothing.
          this.#settle(conn, f.id, (p) => p.reject(err));
          return;
        }
        if (this.#o.onError) this.#callback(this.#o.onError, err);
        return;
      }
      case 'event':
        if (typeof f.room === 'string' && f.room !== '') {
          if (f.event === RECOVER_EVENT) {
            this.#recoverAsked(conn, f);
            return;
          }
          if (typeof f.offset === 'number' && typeof f.epoch === 'string') {
            this.#onTracked(conn, f);
            return;
          }
        }
        if (this.#o.onEvent) {
          /** @type {WsgateEvent} */
          const ev = { event: String(f.event), data: f.data };
          if (typeof f.room === 'string' && f.room !== '') ev.room = f.room;
          this.#callback(this.#o.onEvent, ev);
        }
        return;
      case 'bye':
        conn.bye = String(f.data?.reason ?? '');
        return;
      default:
    }
  }

  /**
   * @param {Conn} conn
   * @param {unknown} id
   * @param {(p: {resolve: (data: unknown) => void, reject: (err: WsgateError) => void}) => void} fn
   * @returns {boolean} whether a call was waiting for id
   */
  #settle(conn, id, fn) {
    if (typeof id !== 'number') return false;
    const p = conn.pending.get(id);
    if (!p) return false; // it gave up (timeout) or never existed
    conn.pending.delete(id);
    fn(p);
    return true;
  }

  /**
   * Sends a frame with a fresh id on conn and waits for its answer.
   * @param {Conn} conn
   * @param {{type: string, event?: string, room?: string, data?: string}} frame
   * @param {number} timeoutMs
   * @param {(data: unknown) => void} [onAck] runs with the ack's data before
   *   the promise resolves, before the next frame is read
   * @returns {Promise<unknown>}
   */
  #callOn(conn, frame, timeoutMs, onAck) {
    return new Promise((resolve, reject) => {
      this.#seq = nextId(this.#seq);
      const id = this.#seq;
      const timer = setTimeout(() => {
        conn.pending.delete(id);
        reject(new WsgateError(ErrorCode.TIMEOUT, `no answer within ${this.#o.ackTimeoutMs} ms; the outcome is unknown`));
      }, timeoutMs);
      conn.pending.set(id, {
        resolve: (data) => {
          clearTimeout(timer);
          if (onAck) onAck(data);
          resolve(data);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      if (!conn.send(encodeFrame(frame, id))) {
        conn.pending.delete(id);
        clearTimeout(timer);
        reject(this.#stopped ?? new WsgateError(ErrorCode.DISCONNECTED, 'the connection was lost'));
      }
    });
  }

  /**
   * Waits for the connection (within the ack timeout), then calls on it.
   * @param {{type: string, event?: string, room?: string, data?: string}} frame
   * @param {(data: unknown) => void} [onAck]
   * @param {(conn: Conn) => void} [onConn]
   */
  async #request(frame, onAck, onConn) {
    const start = Date.now();
    const conn = await this.#waitConn(this.#o.ackTimeoutMs);
    if (onConn) onConn(conn);
    return this.#callOn(conn, frame, Math.max(0, this.#o.ackTimeoutMs - (Date.now() - start)), onAck);
  }

  /**
   * The connection in use, waiting up to ms while the client (re)connects.
   * @param {number} ms
   * @returns {Promise<Conn>}
   */
  #waitConn(ms) {
    if (this.#stopped) return Promise.reject(this.#stopped);
    if (this.#conn) return Promise.resolve(this.#conn);
    if (!this.#started) {
      return Promise.reject(new WsgateError(ErrorCode.NOT_CONNECTED, 'connect() was not called'));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (/** @type {Conn} */ c) => {
          clearTimeout(timer);
          resolve(c);
        },
        reject: (/** @type {WsgateError} */ e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new WsgateError(ErrorCode.NOT_CONNECTED, `not connected within ${ms} ms; nothing was sent`));
      }, ms);
      this.#waiters.add(waiter);
      this.#wakeIfIdle();
    });
  }

  /**
   * Rejoins the remembered rooms on a new connection before it is used.
   * Rooms the server now refuses are forgotten and returned.
   * @param {Conn} conn
   * @returns {Promise<{room: string, code: string}[]>}
   */
  async #rejoin(conn) {
    for (const room of conn.autoRecover) {
      const err = await this.#rejoinOne(conn, room);
      if (err) this.#giveUp(conn, room, err);
    }
    const rooms = [...this.#rooms].sort();
    const lost = [];
    for (const room of rooms) {
      const err = await this.#rejoinOne(conn, room);
      if (err) {
        this.#giveUp(conn, room, err);
        this.#rooms.delete(room);
        this.#positions.delete(room);
        lost.push({ room, code: err.code });
      }
    }
    // A leave() that gave up waiting while this connection was set up forgot
    // its room without telling the server: undo the rejoin of it.
    for (const room of rooms) {
      if (!this.#rooms.has(room) && !lost.some((l) => l.room === room)) {
        conn.send(encodeFrame({ type: 'leave', room }));
      }
    }
    return lost;
  }

  /**
   * Joins one room on a new connection, pausing when the server's join rate
   * limit bites; a room the client has a position for is recovered from
   * it. Resolves with the server's refusal, if any; a lost connection
   * rejects with a Cause.
   * @param {Conn} conn
   * @param {string} room
   * @returns {Promise<WsgateError|null>}
   */
  async #rejoinOne(conn, room) {
    let since = this.#positions.get(room);
    if (since && !this.#startRecovery(conn, room, since)) {
      const rr = conn.recovering.get(room);
      if (!rr || rr.acked) return null;
      since = rr.since; // an automatic room, held since the welcome
    }
    const frame = since ? recoveryFrame(room, since) : { type: 'join', room };
    const onAck = since
      ? (/** @type {unknown} */ data) => this.#recoveryAcked(conn, room, data)
      : (/** @type {unknown} */ data) => this.#joined(room, data);
    for (let t = 0; ; t++) {
      try {
        await this.#callOn(conn, frame, this.#o.ackTimeoutMs, onAck);
        return null;
      } catch (err) {
        if (!(err instanceof WsgateError) || !err.server) {
          throw { code: CloseCode.ABNORMAL, reason: '', token: conn.token, error: toError(err) };
        }
        if (err.code === ErrorCode.RATE_LIMITED && t < 5) {
          if (!(await this.#sleep(REJOIN_RATE_LIMIT_WAIT_MS))) throw { code: CloseCode.NORMAL, reason: '', error: this.#stopped };
          continue;
        }
        return err;
      }
    }
  }

  // --- recovery ------------------------------------------------------------

  /**
   * Once the welcome arrived: an automatic room the client has a position
   * for, and missed something of, is held back and recovered by #rejoin;
   * one it had no position for starts at the top the welcome gave.
   * @param {Conn} conn
   */
  #prepareRecoveries(conn) {
    for (const [room, top] of Object.entries(conn.welcome.positions)) {
      const since = this.#positions.get(room);
      if (!since) {
        this.#positions.set(room, top);
      } else if (since.epoch === top.epoch && since.offset === top.offset) {
        this.#report({ room, recovered: true, missed: 0, position: { ...top } });
      } else if (since.epoch !== top.epoch) {
        // The server would answer the same: another epoch cannot be recovered.
        this.#positions.set(room, top);
        this.#report({ room, recovered: false, missed: 0, position: { ...top } });
      } else if (this.#startRecovery(conn, room, since)) {
        conn.autoRecover.push(room);
      }
    }
  }

  /**
   * A plain join was acked: a room with history starts at the top the ack
   * gives.
   * @param {string} room
   * @param {unknown} data
   */
  #joined(room, data) {
    const d = data && typeof data === 'object' ? /** @type {Record<string, any>} */ (data) : {};
    if (typeof d.offset === 'number' && typeof d.epoch === 'string' && !this.#positions.has(room)) {
      this.#positions.set(room, { offset: d.offset, epoch: d.epoch });
    }
  }

  /** Holds back room's events from now on; false if a recovery is under way. */
  #startRecovery(conn, room, since) {
    if (conn.recovering.has(room)) return false;
    conn.recovering.set(room, { since, acked: false, left: 0, missed: 0, held: [], again: false });
    return true;
  }

  /** An event of a room with history: once, in order, or held back. */
  #onTracked(conn, f) {
    const rr = conn.recovering.get(f.room);
    if (!rr) {
      this.#deliver(f);
      return;
    }
    if (!rr.acked) {
      rr.held.push(f);
      return;
    }
    this.#deliver(f);
    if (--rr.left <= 0) this.#finish(conn, f.room, rr);
  }

  /** Delivers an event unless it was delivered already. */
  #deliver(f) {
    const old = this.#positions.get(f.room);
    if (old && old.epoch === f.epoch && f.offset <= old.offset) return;
    const position = { offset: f.offset, epoch: f.epoch };
    this.#positions.set(f.room, position);
    if (this.#o.onEvent) {
      this.#callback(this.#o.onEvent, { event: String(f.event), room: f.room, data: f.data, position: { ...position } });
    }
  }

  /** The join of a recovery was acked: runs before the next frame is read. */
  #recoveryAcked(conn, room, data) {
    const rr = conn.recovering.get(room);
    if (!rr || rr.acked) return;
    rr.acked = true;
    const d = data && typeof data === 'object' ? /** @type {Record<string, any>} */ (data) : {};
    const top = typeof d.offset === 'number' && typeof d.epoch === 'string' ? { offset: d.offset, epoch: d.epoch } : undefined;
    if (typeof d.recovered !== 'boolean') {
      // The room keeps no history (any more): nothing to recover.
      if (top) this.#positions.set(room, top);
      else this.#positions.delete(room);
      this.#flush(conn, room, rr);
    } else if (d.recovered) {
      rr.left = rr.missed = Number(d.missed) || 0;
      if (rr.left <= 0) this.#finish(conn, room, rr);
    } else {
      if (top) this.#positions.set(room, top);
      else this.#positions.delete(room);
      this.#report({ room, recovered: false, missed: 0, ...(top && { position: { ...top } }) });
      this.#flush(conn, room, rr);
    }
  }

  /** Ends a recovery whose missed events were all delivered. */
  #finish(conn, room, rr) {
    const p = this.#positions.get(room);
    this.#report({ room, recovered: true, missed: rr.missed, ...(p && { position: { ...p } }) });
    this.#flush(conn, room, rr);
  }

  /** Delivers the held-back events not delivered yet; ends the recovery. */
  #flush(conn, room, rr) {
    conn.recovering.delete(room);
    for (const f of rr.held) this.#deliver(f);
    const since = this.#positions.get(room);
    if (rr.again && since && this.#startRecovery(conn, room, since)) this.#recoverInBackground(conn, room, since);
  }

  /**
   * A recovery's join failed: the server's answer (or none in time) is
   * reported, and the room's held events delivered; a lost connection is
   * not reported (the next one recovers the room again).
   */
  #giveUp(conn, room, err) {
    const rr = conn.recovering.get(room);
    if (!rr || !(err instanceof WsgateError) || !(err.server || err.code === ErrorCode.TIMEOUT)) return;
    const p = this.#positions.get(room);
    this.#report({ room, recovered: false, missed: 0, ...(p && { position: { ...p } }), error: err });
    this.#flush(conn, room, rr);
  }

  /** The server's $recover: a gap it could not fill. */
  #recoverAsked(conn, f) {
    const since = this.#positions.get(f.room) ?? positionsOf({ r: f.data }).r;
    if (!since) return;
    const rr = conn.recovering.get(f.room);
    if (rr) {
      rr.again = true;
      return;
    }
    this.#startRecovery(conn, f.room, since);
    this.#recoverInBackground(conn, f.room, since);
  }

  #recoverInBackground(conn, room, since) {
    this.#callOn(conn, recoveryFrame(room, since), this.#o.ackTimeoutMs, (data) => this.#recoveryAcked(conn, room, data))
      .catch((err) => this.#giveUp(conn, room, err));
  }

  /** @param {Recovery} r */
  #report(r) {
    if (this.#o.onRecovery) this.#callback(this.#o.onRecovery, r);
  }

  /** @param {Conn} conn @param {{room: string, code: string}[]} lostRooms */
  #publish(conn, lostRooms) {
    this.#conn = conn;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    /** @type {WsgateState} */
    const st = { phase: 'connected', welcome: conn.welcome };
    if (lostRooms.length) st.lostRooms = lostRooms;
    this.#emitState(st);
    this.#ready.resolve(conn.welcome);
    for (const w of waiters) w.resolve(conn);
  }

  /** Stops the client for a cause that forbids reconnecting. @param {Cause} cause */
  #stop(cause) {
    if (this.#stopped) return;
    // Calls from now on fail with CLOSED; the state says why.
    this.#stopped = new WsgateError(ErrorCode.CLOSED, `the client stopped: ${cause.error.message}`, {
      closeCode: cause.code,
      cause: cause.error,
    });
    this.#shutdown();
    this.#emitState({ phase: 'closed', code: cause.code, reason: cause.reason, error: cause.error });
  }

  /** Closes the sockets and fails everything waiting; #stopped is set. */
  #shutdown() {
    const err = /** @type {WsgateError} */ (this.#stopped);
    if (this.#wakeup) this.#wakeup(false);
    for (const conn of [this.#conn, this.#dialing]) {
      if (conn) conn.abort({ code: CloseCode.NORMAL, reason: '', error: err });
    }
    this.#conn = null;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.reject(err);
    this.#ready.reject(err);
  }

  /** Waits ms; false if the client stopped meanwhile. @param {number} ms */
  #sleep(ms) {
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wakeup = null;
        resolve(true);
      }, ms);
      this.#wakeup = (ok) => {
        clearTimeout(timer);
        this.#wakeup = null;
        resolve(ok);
      };
    });
  }

  /**
   * After an idle close (4002): waits until a call needs the connection.
   * @param {Cause} cause
   * @returns {Promise<boolean>} false if the client stopped meanwhile
   */
  #idleUntilNeeded(cause) {
    if (this.#stopped) return Promise.resolve(false);
    if (this.#waiters.size > 0) return Promise.resolve(true);
    this.#idle = true;
    this.#emitState({ phase: 'idle', code: cause.code, reason: cause.reason, error: cause.error });
    return new Promise((resolve) => {
      this.#wakeup = (ok) => {
        this.#idle = false;
        this.#wakeup = null;
        resolve(ok);
      };
    });
  }

  #wakeIfIdle() {
    if (this.#idle && this.#wakeup) this.#wakeup(true);
  }

  /** @param {WsgateState} st */
  #emitState(st) {
    if (this.#o.onState) this.#callback(this.#o.onState, st);
  }

  /** Runs an application callback; what it throws is reported, not propagated. */
  #callback(fn, arg) {
    try {
      fn(arg);
    } catch (err) {
      report(err);
    }
  }
}

/**
 * Creates a client and connects it: resolves once the first welcome
 * arrived, rejects if the client stopped before.
 * @param {string|URL} url
 * @param {ClientOptions} [options]
 * @returns {Promise<WsgateClient>}
 */
export async function connect(url, options) {
  const client = new WsgateClient(url, options);
  await client.connect();
  return client;
}

/** The event with which the server asks for a recovery. */
const RECOVER_EVENT = '$recover';

/**
 * A join asking for what came after `since`.
 * @param {string} room
 * @param {Position} since
 */
function recoveryFrame(room, since) {
  return { type: 'join', room, data: JSON.stringify({ since: { offset: since.offset, epoch: since.epoch } }) };
}

/**
 * The well-formed positions of a welcome.
 * @param {unknown} v
 * @returns {Record<string, Position>}
 */
function positionsOf(v) {
  /** @type {Record<string, Position>} */
  const out = {};
  if (!v || typeof v !== 'object') return out;
  for (const [room, p] of Object.entries(v)) {
    if (p && typeof p.offset === 'number' && Number.isSafeInteger(p.offset) && p.offset >= 0 && typeof p.epoch === 'string') {
      out[room] = { offset: p.offset, epoch: p.epoch };
    }
  }
  return out;
}

/** @param {unknown} raw @returns {Record<string, any>|null} */
function parse(raw) {
  if (typeof raw !== 'string') return null;
  try {
    const f = JSON.parse(raw);
    return f !== null && typeof f === 'object' && !Array.isArray(f) && typeof f.type === 'string' ? f : null;
  } catch {
    return null;
  }
}

/** @param {unknown} err @returns {WsgateError} */
function toError(err) {
  if (err instanceof WsgateError) return err;
  return new WsgateError(ErrorCode.INTERNAL, err instanceof Error ? err.message : String(err), { cause: err });
}

/**
 * @template T
 * @param {Promise<T>} p
 * @param {number} ms
 * @returns {Promise<T>}
 */
function withTimeout(p, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no token within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
