// The chat page's Socket.IO transport: the same small interface as the
// wsgate browser module's WsgateClient (connect, join, leave, emit, call,
// close, and the onEvent, onError and onState callbacks), on the official
// socket.io-client, which this server serves from the npm package at
// /static/socket.io.esm.min.js (see -socketio-client). app.js uses it on
// /socketio; the server side is the same hub, through /socket.io/.
//
// What socket.io-client does itself: the long-polling then WebSocket
// transports and the upgrade, reconnects with backoff, and giving up after
// a CONNECT_ERROR (a refused credential). What this adds: rooms rejoined
// after a reconnect (the server forgets a connection's rooms, as for
// native clients) before the page is told it is connected, and the
// server's {error: {code, message}} acks turned into rejections.
import { io } from './socket.io.esm.min.js';

const CALL_TIMEOUT_MS = 10_000;

export class SocketIOClient {
  #socket;
  #o;
  #rooms = new Set(); // rooms to rejoin after a reconnect
  #first = null; // {resolve, reject} of connect() until the first connect

  /**
   * @param {string} url the server ('/' for this page's origin)
   * @param {{user: string, maxAttempts?: number, onEvent?: Function, onError?: Function, onState?: Function}} opts
   */
  constructor(url, opts) {
    this.#o = { onEvent() {}, onError() {}, onState() {}, ...opts };
    // No token here: the HttpOnly cookie of the login authenticates the
    // session's first request, which the server reads when the CONNECT
    // carries no auth.token.
    this.#socket = io(url, {
      autoConnect: false,
      reconnectionAttempts: opts.maxAttempts ?? Infinity,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
    const s = this.#socket;
    s.on('connect', () => this.#connected());
    s.on('connect_error', (err) => this.#refused(err));
    s.on('disconnect', (reason) => {
      if (s.active) this.#o.onState({ phase: 'reconnecting', code: reason, delayMs: 500 });
      else this.#o.onState({ phase: 'closed', code: reason });
    });
    s.io.on('reconnect_failed', () => this.#fail({ code: 'UNAVAILABLE', message: 'could not reconnect' }));
    s.onAny((event, data) => {
      // An error without an ack to answer comes as the "error" event.
      if (event === 'error') this.#o.onError(data || {});
      else this.#o.onEvent({ event, data });
    });
  }

  /** Connects; resolves once connected, rejects if the server refuses. */
  connect() {
    this.#o.onState({ phase: 'connecting' });
    const p = new Promise((resolve, reject) => {
      this.#first = { resolve, reject };
    });
    this.#socket.connect();
    return p;
  }

  async #connected() {
    const lostRooms = [];
    for (const room of this.#rooms) {
      try {
        await this.#ack('join', room);
      } catch (err) {
        this.#rooms.delete(room);
        lostRooms.push({ room, code: err.code });
      }
    }
    const st = { phase: 'connected', welcome: { userId: this.#o.user, connId: this.#socket.id } };
    if (lostRooms.length) st.lostRooms = lostRooms;
    this.#o.onState(st);
    this.#first?.resolve();
    this.#first = null;
  }

  #refused(err) {
    // socket.io-client retries a transport failure on its own; a
    // CONNECT_ERROR from the server (err.data.code) it does not.
    if (this.#socket.active) return;
    this.#fail({ code: err.data?.code || 'UNAVAILABLE', message: err.message });
  }

  #fail(error) {
    this.#o.onState({ phase: 'closed', code: error.code, error });
    this.#first?.reject(error);
    this.#first = null;
  }

  /** Joins room under the server's room policy. */
  async join(room) {
    await this.#ack('join', room);
    this.#rooms.add(room);
  }

  /** Leaves room. */
  async leave(room) {
    this.#rooms.delete(room);
    await this.#ack('leave', room);
  }

  /** Sends an event without waiting for an answer; false while disconnected. */
  emit(event, data) {
    if (!this.#socket.connected) return false;
    this.#socket.emit(event, data);
    return true;
  }

  /** Sends an event and resolves with the handler's result, or rejects with {code, message}. */
  call(event, data) {
    return this.#ack(event, data);
  }

  async #ack(event, data) {
    let reply;
    try {
      reply = await this.#socket.timeout(CALL_TIMEOUT_MS).emitWithAck(event, data);
    } catch {
      throw { code: 'TIMEOUT', message: `no answer to ${event}` };
    }
    if (reply && typeof reply === 'object' && reply.error) throw reply.error;
    return reply;
  }

  /** Disconnects for good. */
  close() {
    this.#socket.disconnect();
  }
}
