// Package web serves wsgate's browser client: wsgate.js, one
// dependency-free ES module that speaks the wsgate.v1 protocol
// (docs/PROTOCOL.md) with the same behaviour as the Go package client —
// token via a "wsgate.bearer.<jwt>" subprotocol entry or a cookie, calls
// with acks and a timeout, events, join and leave with rejoin after a
// reconnect, in-band token refresh, and reconnects with exponential backoff
// and full jitter that follow the protocol's close-code table.
//
// Mount the module next to the page that imports it, on the page's origin,
// so that a strict Content-Security-Policy (script-src 'self') allows it:
//
//	mux.Handle("GET /static/wsgate.js", web.Handler())
//
// and in the page's module script:
//
//	import { WsgateClient } from '/static/wsgate.js';
//
//	const client = new WsgateClient('/ws', {
//		onEvent: ({ event, room, data }) => { ... },
//		onState: (s) => { ... },
//	});
//	await client.connect();
//	await client.join('conversation:42');
//	const reply = await client.call('message:send', { conversationId: '42', content: 'hi' });
//
// The module's own documentation (JSDoc) lists every option. Its unit tests
// run with node's built-in test runner: node --test web/.
package web
