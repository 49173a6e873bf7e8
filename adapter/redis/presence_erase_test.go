package redis

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
)

// EraseUser removes a user's entries written by every node, a crashed
// one's included, and nobody else's, whatever bytes the ids hold.
func TestPresenceEraseUser(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster bool
	}{{"standalone", false}, {"cluster", true}} {
		t.Run(tc.name, func(t *testing.T) {
			o := PresenceOptions{TTL: time.Minute}
			if tc.cluster {
				o.Addrs, o.Cluster = redistest.StartCluster(t, 3).Addrs(), true
			} else {
				o.Addrs = []string{redistest.Start(t).Addr()}
			}
			a, crashed := newPresence(t, o), newPresence(t, o)
			const glob = "a*" // would match "ab" as a pattern
			for _, e := range []struct {
				node             *Presence
				room, user, conn string
			}{
				{a, "r1", "ana", "c1"}, {a, "r2", "ana", "c1"}, {a, "r1", "bo", "c2"},
				{crashed, "r3", "ana", "c3"}, {crashed, "r1", glob, "c4"}, {crashed, "r1", "ab", "c5"},
			} {
				e.node.Add(e.room, e.user, e.conn)
			}
			eventuallyUsers(t, a, "r1", glob, "ab", "ana", "bo")
			eventuallyUsers(t, a, "r3", "ana")
			crashed.shutdown(false) // its entries stay until they expire
			a.Remove("r1", "ana", "c1")
			a.Remove("r2", "ana", "c1") // the user's connection on a closed
			eventuallyUsers(t, a, "r2")

			ctx := context.Background()
			if err := a.EraseUser(ctx, "ana"); err != nil {
				t.Fatal(err)
			}
			if err := a.EraseUser(ctx, glob); err != nil {
				t.Fatal(err)
			}
			for room, want := range map[string][]string{"r1": {"ab", "bo"}, "r2": {}, "r3": {}} {
				if got := users(t, a, room); !slices.Equal(got, want) {
					t.Errorf("users of %s after the erasure = %v, want %v", room, got, want)
				}
			}
		})
	}
}
