package hub

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wire"
)

// trackingSink is a bridged transport that keeps positions
// (bridge.Tracker): it records the offsets of the events it queues per
// room, and where it was told its client starts.
type trackingSink struct {
	recordingSink
	tmu   sync.Mutex
	sent  map[string][]uint64
	start map[string]protocol.Position
}

var _ bridge.Tracker = (*trackingSink)(nil)

func newTrackingSink() *trackingSink {
	return &trackingSink{sent: make(map[string][]uint64), start: make(map[string]protocol.Position)}
}

func (s *trackingSink) SendAt(b *wire.Batch, room string, pos protocol.Position, frames ...wire.Frame) wire.Result {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	r := s.SendBatch(b, wire.Broadcast, frames...)
	if r == wire.Queued {
		s.sent[room] = append(s.sent[room], pos.Offset)
	}
	return r
}

func (s *trackingSink) Told(room string, pos protocol.Position) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	s.start[room] = pos
}

func (s *trackingSink) Joined(string, bool)            {}
func (s *trackingSink) Left(string)                    {}
func (s *trackingSink) Established(bridge.Established) {}
func (s *trackingSink) Lost(string)                    {}
func (s *trackingSink) offsets(room string) []uint64 {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	return slices.Clone(s.sent[room])
}

// Two server-side joins of one room race for a connection that keeps
// positions: the one that loses finds the room joined once it holds it,
// and lets the events held meanwhile through instead of skipping them up
// to the top it would have read.
func TestRacingServerJoinsSkipNothing(t *testing.T) {
	h := newPipeHub(t, func(o *Options) {
		o.History = map[string]HistoryPolicy{"topic": {Size: 100}}
	})
	s := newTrackingSink()
	id := auth.Identity{UserID: "u", ExpiresAt: time.Now().Add(time.Hour)}
	bc, err := bridge.Attach(h, bridge.Request{Ctx: context.Background()}, id, protocol.Native{}, s)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Closed("done")
	const name = "topic:race"
	n := 0
	publish := func() {
		n++
		if err := h.Broadcast(context.Background(), name, "n", n); err != nil {
			t.Error(err)
		}
	}
	second := make(chan error, 1)
	waiting := make(chan struct{})
	var once sync.Once
	var held int
	defer SetRecoveryHook(func(step string) {
		switch step {
		case "hold-wait": // the second join waits for the first's hold
			once.Do(func() { close(waiting) })
		case "tracked-held":
			held++
			switch held {
			case 1: // the first join holds the room: a second one starts
				go func() { second <- h.JoinConn(bc.ID(), name) }()
				select {
				case <-waiting:
				case <-time.After(5 * time.Second):
					t.Error("the second join did not wait for the room")
				}
			case 2: // the second holds it, joined by the first: publish
				publish()
				publish()
			}
		}
	})()
	if err := h.JoinConn(bc.ID(), name); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	SetRecoveryHook(nil)
	publish()
	testutil.Eventually(t, 5*time.Second, "every event", func() bool { return len(s.offsets(name)) == n })
	if got := s.offsets(name); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("offsets %v queued, want 1 2 3", got)
	}
}
