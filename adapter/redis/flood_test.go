package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/redistest"
)

// TestForgedFloodTakesNoDeliverySlot floods a room's channel with unsigned
// messages, as anyone with write access to Redis can, while a node with the
// key publishes ten genuine ones. The handler is held on the first genuine
// message for the whole flood, so the delivery queue is as full as it will
// ever be: if forgeries could take a slot, the genuine messages would find
// none. Forgeries must be refused before they are queued, and counted.
func TestForgedFloodTakesNoDeliverySlot(t *testing.T) {
	const forged, genuine = 400_000, 10
	srv := redistest.Start(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	recv, err := New(Options{Addrs: []string{srv.Addr()}, HMACKey: key, DeliveryBuffer: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	first, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before Close, which waits for the handler
	got := make(chan string, genuine)
	var firstOnce sync.Once
	if err := recv.Attach(func(m adapter.Message) {
		got <- string(m.Payload)
		firstOnce.Do(func() {
			close(first)
			<-release
		})
	}); err != nil {
		t.Fatal(err)
	}
	subscribe(t, recv, "room:flood")
	sender, _ := node(t, Options{Addrs: []string{srv.Addr()}, HMACKey: key})

	publish(t, sender, "room:flood", []byte("genuine-0"))
	select {
	case <-first:
	case <-time.After(waitFor):
		t.Fatal("the first genuine message was not delivered")
	}

	raw := rawClient(t, srv.Addr())
	const batch = 1000
	forgery := `{"type":"event","event":"notification:new","data":{"title":"pwned"}}`
	for b := range forged / batch {
		cmds := make(rueidis.Commands, 0, batch)
		for range batch {
			cmds = append(cmds, raw.B().Publish().Channel("wsgate:room:flood").Message(forgery).Build())
		}
		for _, r := range raw.DoMulti(context.Background(), cmds...) {
			if err := r.Error(); err != nil {
				t.Fatalf("flood: %v", err)
			}
		}
		if n := (b + 1) * batch; n%(forged/(genuine-1)) < batch && n < forged {
			publish(t, sender, "room:flood", fmt.Appendf(nil, "genuine-%d", n/(forged/(genuine-1))))
		}
	}
	publish(t, sender, "room:flood", []byte("genuine-9"))

	// Every message has been looked at once each is counted or queued.
	eventually(t, "the receiver has seen the whole flood", func() error {
		st := recv.Stats()
		if seen := st.Rejected + st.Dropped + uint64(len(recv.queue)); seen < forged+genuine-1 {
			return fmt.Errorf("%d of %d seen (%+v)", seen, forged+genuine-1, st)
		}
		return nil
	})
	releaseOnce.Do(func() { close(release) })
	want := map[string]bool{}
	for i := range genuine {
		want[fmt.Sprintf("genuine-%d", i)] = true
	}
	deadline := time.After(waitFor)
	for len(want) > 0 {
		select {
		case m := <-got:
			delete(want, m)
		case <-deadline:
			t.Fatalf("%d genuine messages never delivered: %v (stats %+v)", len(want), want, recv.Stats())
		}
	}
	// Delivered is counted once the handler has returned, which can be
	// after the test read what it sent.
	eventually(t, "the counters", func() error {
		if st := recv.Stats(); st.Rejected != forged || st.Dropped != 0 || st.Delivered != genuine {
			return fmt.Errorf("stats %+v, want %d rejected, none dropped, %d delivered", st, forged, genuine)
		}
		return nil
	})
}
