// wsgate chat demo client. It speaks the wsgate.v1 protocol
// (docs/PROTOCOL.md) with a plain browser WebSocket, so that it can be read
// top to bottom; a reusable client module can replace this file without a
// change to the page or the server.
//
// Everything received is rendered with textContent, never innerHTML: the
// server sanitizes message content, but the page does not rely on it.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const state = {
    ws: null,
    user: '',
    conversation: '', // the conversation the user picked
    joined: '', // the conversation the server confirmed we are in
    nextId: 1,
    pending: new Map(), // message id -> {resolve, reject, timer}
    typing: false,
    typingSentAt: 0,
    typingTimer: 0,
    typists: new Map(), // userId -> timer that forgets them
    reconnects: 0,
  };

  // Typing indicators: refresh while typing, stop after a pause. The server
  // allows about 2 per second, far more than this sends.
  const TYPING_REFRESH_MS = 3000;
  const TYPING_IDLE_MS = 3000;
  const TYPIST_EXPIRY_MS = 8000;

  function setStatus(text) {
    $('status').textContent = text;
  }

  function showError(text) {
    const li = document.createElement('li');
    li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    $('errors').prepend(li);
  }

  // request sends a message with an id; the server answers exactly one ack
  // (resolves with its data) or error (rejects with "CODE: message").
  function request(msg) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('not connected'));
    }
    const id = state.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        state.pending.delete(id);
        reject(new Error('TIMEOUT: no answer from the server'));
      }, 10000);
      state.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  // emit sends an event without an id: only an error would come back.
  function emit(event, data) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ type: 'event', event, data }));
    }
  }

  function settle(id, ok, value) {
    const p = state.pending.get(id);
    if (!p) return false;
    state.pending.delete(id);
    clearTimeout(p.timer);
    if (ok) p.resolve(value);
    else p.reject(new Error(`${value.code}: ${value.message}`));
    return true;
  }

  function connect() {
    if (state.ws) {
      state.ws.onclose = null;
      state.ws.close(1000);
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // No token here: the HttpOnly cookie set by the login authenticates the
    // handshake, and the server checks this page's Origin against its list.
    const ws = new WebSocket(`${scheme}//${location.host}/ws`, ['wsgate.v1']);
    state.ws = ws;
    setStatus('connecting…');
    ws.onmessage = (e) => {
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        showError('the server sent something that is not JSON');
        return;
      }
      onFrame(frame);
    };
    ws.onclose = (e) => onClose(ws, e);
  }

  function onFrame(f) {
    switch (f.type) {
      case 'welcome':
        state.reconnects = 0;
        state.user = f.data.userId;
        setStatus(`connected as ${f.data.userId}`);
        joinConversation(state.conversation);
        break;
      case 'ack':
        settle(f.id, true, f.data);
        break;
      case 'error':
        if (f.id === undefined || !settle(f.id, false, f)) {
          showError(`${f.code}: ${f.message}`);
        }
        break;
      case 'event':
        onEvent(f.event, f.data || {});
        break;
      case 'bye':
        setStatus(`the server is closing the connection (${f.data.reason})`);
        break;
    }
  }

  function onClose(ws, e) {
    if (state.ws !== ws) return;
    state.ws = null;
    state.joined = '';
    for (const id of [...state.pending.keys()]) {
      settle(id, false, { code: 'CLOSED', message: 'connection closed' });
    }
    // Close codes and whether to reconnect: docs/PROTOCOL.md. A refused
    // handshake (401, 403, 429) shows up as 1006 without its status, since
    // browsers hide it; the server log has the reason.
    const again = e.code === 1012 || e.code === 1013 || e.code === 4008 ||
      (e.code === 1006 && state.reconnects < 5) || (e.code === 1008 && state.reconnects < 3);
    if (e.code === 4003) {
      setStatus('session expired: log in again');
    } else if (again) {
      const base = e.code === 1012 ? 500 : 1000 * 2 ** state.reconnects;
      const floor = e.code === 1008 ? 10000 : 0;
      const delay = Math.min(30000, Math.max(floor, base)) + Math.random() * 1000;
      state.reconnects++;
      setStatus(`disconnected (${e.code}); reconnecting in ${Math.round(delay / 1000)} s`);
      setTimeout(connect, delay);
    } else {
      setStatus(`disconnected (${e.code}${e.reason ? ': ' + e.reason : ''})`);
    }
  }

  function joinConversation(id) {
    stopTyping();
    $('messages').replaceChildren();
    $('typing').textContent = '';
    state.typists.forEach(clearTimeout);
    state.typists.clear();
    const previous = state.joined;
    state.joined = '';
    if (previous && previous !== id) {
      request({ type: 'leave', room: `conversation:${previous}` }).catch((err) => showError(`leave: ${err.message}`));
    }
    if (!id) return;
    request({ type: 'join', room: `conversation:${id}` })
      .then(() => {
        state.joined = id;
      })
      .catch((err) => showError(`join: ${err.message}`));
  }

  function onEvent(event, data) {
    if (data.conversationId !== state.joined) return;
    switch (event) {
      case 'message:new':
        renderMessage(data);
        if (data.senderId !== state.user) {
          emit('message:read', { conversationId: data.conversationId, messageId: data.id });
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
    text.textContent = decodeEntities(m.content);
    li.append(meta, text);
    const list = $('messages');
    list.append(li);
    list.scrollTop = list.scrollHeight;
  }

  // The server's strict sanitizer removes tags and escapes <>&'" as
  // entities, so "Tom & Jerry" arrives as "Tom &amp; Jerry". An inert
  // DOMParser document (no scripts run, nothing loads) turns the entities
  // back into characters, which then go into the page as text only.
  function decodeEntities(s) {
    if (!s.includes('&')) return s;
    return new DOMParser().parseFromString(s, 'text/html').documentElement.textContent;
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
    if (!state.joined) return;
    const now = Date.now();
    if (!state.typing || now - state.typingSentAt > TYPING_REFRESH_MS) {
      emit('typing:start', { conversationId: state.joined });
      state.typing = true;
      state.typingSentAt = now;
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (state.typing && state.joined) {
      emit('typing:stop', { conversationId: state.joined });
    }
    state.typing = false;
  }

  function onSend(e) {
    e.preventDefault();
    const input = $('content');
    const content = input.value;
    if (!content.trim() || !state.joined) return;
    stopTyping();
    request({ type: 'event', event: 'message:send', data: { conversationId: state.joined, content } })
      .then(() => {
        input.value = '';
      })
      .catch((err) => showError(`send: ${err.message}`));
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
    showConversations(body.conversations);
    connect();
  }

  function onConnect(e) {
    e.preventDefault();
    const id = $('conversation-id').value.trim();
    showConversations([{ id, title: id }]);
    connect();
  }

  document.addEventListener('DOMContentLoaded', () => {
    if ($('login')) $('login').addEventListener('submit', onLogin);
    if ($('connect')) $('connect').addEventListener('submit', onConnect);
    $('compose').addEventListener('submit', onSend);
    $('content').addEventListener('input', onInput);
    $('conversation').addEventListener('change', (e) => {
      state.conversation = e.target.value;
      joinConversation(state.conversation);
    });
  });
})();
