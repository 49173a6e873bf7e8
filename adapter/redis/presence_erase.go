package redis

import (
	"context"
	"fmt"
	"strings"
)

// eraseScript removes from one room the members matching a pattern.
// KEYS[1] the room; ARGV[1] the ZSCAN MATCH pattern.
var eraseScript = newScript(`
local cursor, n = '0', 0
repeat
  local r = redis.call('ZSCAN', KEYS[1], cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for i = 1, #r[2], 2 do
    n = n + redis.call('ZREM', KEYS[1], r[2][i])
  end
until cursor == '0'
return n
`)

// EraseUser removes every presence entry of userID, in every room, from
// every node's records in Redis, for a deletion request: it implements
// hub.PresenceEraser. It scans the presence keys of every server (SCAN,
// then one script per room), so its cost grows with the number of rooms;
// it is meant for the rare erasure, not for a hot path. Entries of
// connections still open are written again by their node's next refresh:
// disconnect the user first (hub.DisconnectUser) to remove them for good.
func (p *Presence) EraseUser(ctx context.Context, userID string) error {
	if p.closed.Load() {
		return ErrClosed
	}
	// Every room's key starts with key("presence", "") but its closing brace.
	prefix := p.st.key("presence", "")
	pattern := globEscape(prefix[:len(prefix)-1]) + "*"
	members := globEscape(member(userID, "")) + "*"
	for addr, node := range p.st.client.Nodes() {
		cursor := uint64(0)
		for {
			rctx, cancel := p.st.withTimeout(ctx)
			e, err := node.Do(rctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			cancel()
			if err != nil {
				return fmt.Errorf("redis: erase presence on %s: %w", addr, p.st.fail(err))
			}
			for _, key := range e.Elements {
				rctx, cancel := p.st.withTimeout(ctx)
				err := eraseScript.exec(rctx, p.st.client, call{key: key, args: []string{members}}).Error()
				cancel()
				if err != nil {
					return fmt.Errorf("redis: erase presence in %s: %w", key, p.st.fail(err))
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	p.st.ok()
	return nil
}

// globEscape escapes the characters MATCH patterns give a meaning.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
