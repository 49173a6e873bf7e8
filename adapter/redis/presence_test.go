package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
)

// newPresence starts a Presence that is closed at cleanup.
func newPresence(t *testing.T, o PresenceOptions) *Presence {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	p, err := NewPresence(o)
	if err != nil {
		t.Fatalf("NewPresence: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// users returns Users(room) or fails the test.
func users(t *testing.T, p *Presence, room string) []string {
	t.Helper()
	got, err := p.Users(context.Background(), room)
	if err != nil {
		t.Fatalf("Users(%s): %v", room, err)
	}
	return got
}

// eventuallyUsers polls p until room lists exactly want.
func eventuallyUsers(t *testing.T, p *Presence, room string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	eventually(t, fmt.Sprintf("users of %s = %v", room, want), func() error {
		got, err := p.Users(context.Background(), room)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("got %v", got)
		}
		return nil
	})
}

func TestPresence(t *testing.T) {
	srv := redistest.Start(t)
	fast := PresenceOptions{Addrs: []string{srv.Addr()}, TTL: time.Second, RefreshInterval: 100 * time.Millisecond}

	tests := []struct {
		name string
		run  func(t *testing.T, a, b *Presence)
	}{
		{"users_of_every_node_are_listed_on_every_node", func(t *testing.T, a, b *Presence) {
			a.Add("lobby", "alice", "c1")
			b.Add("lobby", "bob", "c2")
			b.Add("other", "carl", "c3")
			eventuallyUsers(t, a, "lobby", "alice", "bob")
			eventuallyUsers(t, b, "lobby", "alice", "bob")
		}},
		{"a_user_with_several_connections_is_listed_once", func(t *testing.T, a, b *Presence) {
			a.Add("r2", "alice", "c1")
			a.Add("r2", "alice", "c2")
			b.Add("r2", "alice", "c3")
			eventuallyUsers(t, b, "r2", "alice")
		}},
		{"remove_drops_a_user_with_the_last_connection", func(t *testing.T, a, b *Presence) {
			a.Add("r3", "alice", "c1")
			b.Add("r3", "alice", "c2")
			b.Add("r3", "bob", "c3")
			eventuallyUsers(t, a, "r3", "alice", "bob")
			a.Remove("r3", "alice", "c1")
			b.Remove("r3", "bob", "c3")
			eventuallyUsers(t, a, "r3", "alice")
			b.Remove("r3", "alice", "c2")
			eventuallyUsers(t, a, "r3")
		}},
		{"add_then_remove_at_once_leaves_nothing", func(t *testing.T, a, b *Presence) {
			for i := range 100 {
				a.Add("r4", "u"+strconv.Itoa(i), "c")
				a.Remove("r4", "u"+strconv.Itoa(i), "c")
			}
			a.Add("r4", "marker", "c")
			eventuallyUsers(t, b, "r4", "marker")
		}},
		{"an_empty_room_is_an_empty_list", func(t *testing.T, a, b *Presence) {
			got := users(t, a, "nobody-here")
			if got == nil || len(got) != 0 {
				t.Fatalf("Users = %#v, want an empty slice", got)
			}
		}},
		{"entries_outlive_the_TTL_while_the_node_refreshes", func(t *testing.T, a, b *Presence) {
			a.Add("r5", "alice", "c1")
			eventuallyUsers(t, b, "r5", "alice")
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if got := users(t, b, "r5"); !slices.Equal(got, []string{"alice"}) {
					t.Fatalf("Users = %v while a refreshes", got)
				}
			}
		}},
		{"a_crashed_node_entries_expire_within_the_TTL", func(t *testing.T, a, b *Presence) {
			a.Add("r6", "alice", "c1")
			b.Add("r6", "bob", "c2")
			eventuallyUsers(t, b, "r6", "alice", "bob")
			a.shutdown(false)
			crashed := time.Now()
			eventuallyUsers(t, b, "r6", "bob")
			if d := time.Since(crashed); d > fast.TTL+500*time.Millisecond {
				t.Fatalf("entries gone %s after the crash, TTL %s", d, fast.TTL)
			}
		}},
		{"close_removes_the_node_entries_at_once", func(t *testing.T, a, b *Presence) {
			a.Add("r7", "alice", "c1")
			a.Add("r7", "bob", "c2")
			b.Add("r7", "bob", "c3")
			eventuallyUsers(t, b, "r7", "alice", "bob")
			a.Add("r7", "dan", "c4") // still queued, perhaps, when Close runs
			a.Close()
			if got := users(t, b, "r7"); !slices.Equal(got, []string{"bob"}) {
				t.Fatalf("Users after Close = %v, want [bob]", got)
			}
			if _, err := a.Users(context.Background(), "r7"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Users after Close: %v, want ErrClosed", err)
			}
			a.Add("r7", "eve", "c5") // a no-op, not a panic
		}},
		{"entries_lost_by_redis_are_written_again", func(t *testing.T, a, b *Presence) {
			a.Add("r8", "alice", "c1")
			eventuallyUsers(t, b, "r8", "alice")
			raw := rawClient(t, srv.Addr())
			if err := raw.Do(context.Background(), raw.B().Del().Key("wsgate:presence:{r8}").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			eventuallyUsers(t, b, "r8", "alice")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newPresence(t, fast), newPresence(t, fast))
		})
	}
}

func TestPresenceOutage(t *testing.T) {
	t.Run("queue_overflow_is_counted_and_repaired_by_the_refresh", func(t *testing.T) {
		srv := redistest.Start(t)
		p := newPresence(t, PresenceOptions{Addrs: []string{srv.Addr()}, QueueSize: 1,
			TTL: 2 * time.Second, RefreshInterval: 200 * time.Millisecond, Timeout: 5 * time.Second})
		srv.Pause()
		p.Add("busy", "blocker", "c")
		eventually(t, "writer blocked on the paused Redis", func() error {
			if n := len(p.queue); n != 0 {
				return fmt.Errorf("%d queued", n)
			}
			return nil
		})
		want := []string{"blocker"}
		for i := range 50 {
			want = append(want, fmt.Sprintf("u%02d", i))
			p.Add("busy", want[i+1], "c")
		}
		// One call fits the queue; a second may have been taken by the
		// writer if it was still between receiving "blocker" and sending.
		if got := p.Stats().Dropped; got < 48 || got > 49 {
			t.Fatalf("Dropped = %d, want 49 (or 48)", got)
		}
		srv.Resume()
		eventuallyUsers(t, p, "busy", want...)
	})
	t.Run("entries_come_back_after_a_redis_restart", func(t *testing.T) {
		srv := redistest.Start(t)
		o := PresenceOptions{Addrs: []string{srv.Addr()}, TTL: time.Second, RefreshInterval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond}
		a, b := newPresence(t, o), newPresence(t, o)
		a.Add("lobby", "alice", "c1")
		eventuallyUsers(t, b, "lobby", "alice")
		srv.Kill()
		start := time.Now()
		_, err := b.Users(context.Background(), "lobby")
		if !errors.Is(err, ErrUnavailable) || time.Since(start) > o.Timeout+200*time.Millisecond {
			t.Fatalf("Users with Redis down: %v after %s, want ErrUnavailable within the timeout", err, time.Since(start))
		}
		a.Add("lobby", "bob", "c2") // written by a refresh, the direct write fails
		srv.Restart()               // no persistence: Redis comes back empty
		eventuallyUsers(t, b, "lobby", "alice", "bob")
	})
}

func TestPresenceOptions(t *testing.T) {
	srv := redistest.Start(t)
	addrs := []string{srv.Addr()}
	tests := []struct {
		name string
		opts PresenceOptions
	}{
		{"no_connection", PresenceOptions{}},
		{"negative_queue", PresenceOptions{Addrs: addrs, QueueSize: -1}},
		{"ttl_too_short", PresenceOptions{Addrs: addrs, TTL: time.Millisecond}},
		{"refresh_not_below_ttl", PresenceOptions{Addrs: addrs, RefreshInterval: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := NewPresence(tt.opts); err == nil {
				p.Close()
				t.Fatal("NewPresence succeeded")
			}
		})
	}
	t.Run("zero_values_are_the_documented_defaults", func(t *testing.T) {
		p := newPresence(t, PresenceOptions{Addrs: addrs})
		if cap(p.queue) != DefaultPresenceQueue || p.ttlArg != "30000" || p.interval != 10*time.Second || p.st.timeout != DefaultTimeout {
			t.Fatalf("defaults: %d %s %s %s", cap(p.queue), p.ttlArg, p.interval, p.st.timeout)
		}
	})
}

func TestPresenceMemberEncoding(t *testing.T) {
	for _, user := range []string{"alice", "", "a:b", "3:x:y", "名前", "nul\x00in", "12"} {
		for _, conn := range []string{"c1", "", ":", "x:y"} {
			got, ok := userOf(member(user, conn))
			if !ok || got != user {
				t.Errorf("userOf(member(%q, %q)) = %q, %v", user, conn, got, ok)
			}
		}
	}
	for _, bad := range []string{"", "alice", "x:alice:c", "9:alice:c", "5:alice", "5:alicec1", "-1::c"} {
		if u, ok := userOf(bad); ok {
			t.Errorf("userOf(%q) = %q, want a refusal", bad, u)
		}
	}
}

// TestPresenceWritesAreNotErrors pins that a successful write is counted
// and logged as a success: the write script's reply carries no data, and
// that reply must not read as a failure.
func TestPresenceWritesAreNotErrors(t *testing.T) {
	srv := redistest.Start(t)
	var logs testutil.SyncBuffer
	p := newPresence(t, PresenceOptions{Addrs: []string{srv.Addr()},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for i := range 5 {
		p.Add("lobby", "u"+strconv.Itoa(i), "c")
	}
	p.Remove("lobby", "u0", "c")
	eventuallyUsers(t, p, "lobby", "u1", "u2", "u3", "u4")
	p.Close() // waits for the writer, whose last write removes the entries
	if n := p.Stats().WriteErrors; n != 0 {
		t.Errorf("WriteErrors = %d after successful joins and leaves, want 0", n)
	}
	if s := logs.String(); strings.Contains(s, "redis_presence_unavailable") {
		t.Errorf("a successful write logged an outage:\n%s", s)
	}
}
