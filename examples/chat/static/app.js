// wsgate chat demo client, on the wsgate browser module (web/wsgate.js,
// served by this server at /static/wsgate.js). The module speaks the
// wsgate.v1 protocol (docs/PROTOCOL.md): acks, timeouts, reconnects with
// backoff by the close-code table, rejoining the conversation after a
// reconnect. This file is the page: login, the conversation, rendering.
//
// Everything received is rendered with textContent, never innerHTML: the
// server sanitizes message content, but the page does not rely on it.
//
// On /socketio the same page talks Socket.IO instead, through the
// official socket.io-client (sio-client.js gives it the module's
// interface): the same hub, events and rooms, over /socket.io/.
import { WsgateClient } from './wsgate.js';

const SOCKETIO = document.documentElement.dataset.transport === 'socketio';
const Client = SOCKETIO ? (await import('./sio-client.js')).SocketIOClient : WsgateClient;

const $ = (id) => document.getElementById(id);

const state = {
  /** @type {WsgateClient|null} */
  client: null,
  user: '',
  conversation: '', // the conversation the user picked
  joined: '', // the conversation the server confirmed we are in
  typing: false,
  typingSentAt: 0,
  typingTimer: 0,
  typists: new Map(), // userId -> timer that forgets them
};

// Typing indicators: refresh while typing, stop after a pause. The server
// allows about 2 per second, far more than this sends.
const TYPING_REFRESH_MS = 3000;
const TYPING_IDLE_MS = 3000;
const TYPIST_EXPIRY_MS = 8000;

const room = (id) => `conversation:${id}`;

function setStatus(text) {
  $('status').textContent = text;
}

function showError(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('errors').prepend(li);
}

function setJoined(id) {
  state.joined = id;
  // For the eyes of tests and curious readers: which conversation is live.
  $('chat').dataset.joined = id;
}

// connect replaces the client (a new login is a new identity) and connects.
// No token here: the HttpOnly cookie set by the login authenticates the
// handshake, and the server checks this page's Origin against its list.
function connect() {
  if (state.client) state.client.close();
  setJoined('');
  const client = new Client(SOCKETIO ? '/' : '/ws', {
    user: state.user, // Socket.IO's answer to a CONNECT does not name the user
    // A refused handshake (401, 403, 429) looks like a network loss to a
    // page (the browser hides the status; the server log has the reason),
    // so give up after a few attempts instead of retrying forever.
    maxAttempts: 8,
    onEvent: ({ event, data }) => onEvent(event, data || {}),
    onError: (err) => showError(`${err.code}: ${err.message}`),
    onState: (s) => onState(client, s),
    // After a reconnect the module recovers what the conversation missed
    // (the server keeps its recent history); it says when it could not.
    onRecovery: (r) => onRecovery(client, r),
  });
  state.client = client;
  client.connect().then(
    () => joinConversation(state.conversation),
    () => {}, // reported by onState
  );
}

function onState(client, s) {
  if (state.client !== client) return;
  switch (s.phase) {
    case 'connecting':
      setStatus('connecting…');
      break;
    case 'connected':
      state.user = s.welcome.userId;
      setStatus(`connected as ${s.welcome.userId}`);
      // The module rejoined the conversation before saying so; a room the
      // server now refuses is forgotten and listed here.
      for (const lost of s.lostRooms || []) {
        if (lost.room === room(state.joined)) setJoined('');
        showError(`rejoin ${lost.room}: ${lost.code}`);
      }
      break;
    case 'reconnecting':
      setStatus(`disconnected (${s.code}${s.reason ? `: ${s.reason}` : ''}); reconnecting in ${Math.round(s.delayMs / 1000)} s`);
      break;
    case 'idle':
      setStatus('idle: reconnects when you write');
      break;
    case 'closed':
      if (s.code === 4003) setStatus('session expired: log in again');
      else if (s.error) setStatus(`disconnected (${s.code}${s.reason ? `: ${s.reason}` : ''}): ${s.error.message}`);
      else setStatus('disconnected');
      break;
  }
}

function onRecovery(client, r) {
  if (state.client !== client || r.room !== room(state.joined) || r.recovered) return;
  showError(r.error
    ? `rejoin ${r.room}: ${r.error.code}`
    : 'messages were missed while offline and could not be recovered: reload the page');
}

async function joinConversation(id) {
  const client = state.client;
  if (!client) return;
  stopTyping();
  $('messages').replaceChildren();
  $('typing').textContent = '';
  state.typists.forEach(clearTimeout);
  state.typists.clear();
  const previous = state.joined;
  setJoined('');
  if (previous && previous !== id) {
    client.leave(room(previous)).catch((err) => showError(`leave: ${err.code}: ${err.message}`));
  }
  if (!id) return;
  try {
    await client.join(room(id));
    if (state.client === client && state.conversation === id) setJoined(id);
  } catch (err) {
    showError(`join: ${err.code}: ${err.message}`);
  }
}

function onEvent(event, data) {
  if (!state.joined || data.conversationId !== state.joined) return;
  switch (event) {
    case 'message:new':
      renderMessage(data);
      if (data.senderId !== state.user) {
        state.client.emit('message:read', { conversationId: data.conversationId, messageId: data.id });
      }
      forgetTypist(data.senderId);
      break;
    case 'message:read':
      markRead(data);
      break;
    case 'typing':
      if (data.typing) rememberTypist(data.userId);
      else forgetTypist(data.userId);
      break;
  }
}

function renderMessage(m) {
  const li = document.createElement('li');
  li.dataset.id = m.id;
  if (m.senderId === state.user) li.className = 'own';
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = `${new Date(m.sentAt).toLocaleTimeString()} ${m.senderId}`;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = decodeEntities(m.content);
  li.append(meta, text);
  const list = $('messages');
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

// The server's strict sanitizer removes tags and escapes & < > ' " as
// entities, so "Tom & Jerry" arrives as "Tom &amp; Jerry". Exactly those
// five are turned back into characters, which then go into the page as
// text only; anything else stays as it came.
const ENTITIES = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#34;': '"', '&#39;': "'", '&apos;': "'" };
function decodeEntities(s) {
  return s.includes('&') ? s.replace(/&(?:amp|lt|gt|quot|apos|#34|#39);/g, (e) => ENTITIES[e]) : s;
}

function markRead(r) {
  for (const li of $('messages').children) {
    if (li.dataset.id !== r.messageId) continue;
    let mark = li.querySelector('.read');
    if (!mark) {
      mark = document.createElement('span');
      mark.className = 'read';
      li.append(mark);
    }
    mark.textContent = `read by ${r.userId}`;
  }
}

// Typists are forgotten after a while even without typing:stop, which
// may never come if their connection drops.
function rememberTypist(user) {
  clearTimeout(state.typists.get(user));
  state.typists.set(user, setTimeout(() => forgetTypist(user), TYPIST_EXPIRY_MS));
  renderTypists();
}

function forgetTypist(user) {
  clearTimeout(state.typists.get(user));
  state.typists.delete(user);
  renderTypists();
}

function renderTypists() {
  const names = [...state.typists.keys()];
  $('typing').textContent = names.length ? `${names.join(', ')} typing…` : '';
}

function onInput() {
  if (!state.joined || !state.client) return;
  const now = Date.now();
  if (!state.typing || now - state.typingSentAt > TYPING_REFRESH_MS) {
    // Not sent while reconnecting: a stale "typing" is worse than none.
    if (state.client.emit('typing:start', { conversationId: state.joined })) {
      state.typing = true;
      state.typingSentAt = now;
    }
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (state.typing && state.joined && state.client) {
    state.client.emit('typing:stop', { conversationId: state.joined });
  }
  state.typing = false;
}

async function onSend(e) {
  e.preventDefault();
  const input = $('content');
  const content = input.value;
  if (!content.trim() || !state.joined || !state.client) return;
  stopTyping();
  try {
    // The ack carries {id, sentAt}; the message itself is rendered from
    // the broadcast, which reaches this tab too.
    await state.client.call('message:send', { conversationId: state.joined, content });
    if (input.value === content) input.value = '';
  } catch (err) {
    showError(`send: ${err.code}: ${err.message}`);
  }
}

function showConversations(list) {
  const select = $('conversation');
  select.replaceChildren();
  for (const c of list) {
    const opt = document.createElement('option');
    opt.value = c.id;
    opt.textContent = c.member === false ? `${c.title} (not a member: the server refuses)` : c.title;
    select.append(opt);
  }
  const first = list.find((c) => c.member !== false) || list[0];
  if (first) select.value = first.id;
  state.conversation = select.value;
  $('chat').hidden = false;
}

async function onLogin(e) {
  e.preventDefault();
  const user = $('user').value;
  let res;
  try {
    res = await fetch('/demo/login', {
      method: 'POST',
      body: new URLSearchParams({ user }),
      credentials: 'same-origin',
    });
  } catch (err) {
    showError(`login: ${err.message}`);
    return;
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    showError(`login: ${body.code || res.status}: ${body.message || res.statusText}`);
    return;
  }
  // body.token is for non-browser clients; this page relies on the cookie.
  state.user = body.user;
  showConversations(body.conversations);
  connect();
}

function onConnect(e) {
  e.preventDefault();
  const id = $('conversation-id').value.trim();
  showConversations([{ id, title: id }]);
  connect();
}

// A module script runs after the document is parsed: no DOMContentLoaded.
if ($('login')) $('login').addEventListener('submit', onLogin);
if ($('connect')) $('connect').addEventListener('submit', onConnect);
$('compose').addEventListener('submit', onSend);
$('content').addEventListener('input', onInput);
$('conversation').addEventListener('change', (e) => {
  state.conversation = e.target.value;
  joinConversation(state.conversation);
});
