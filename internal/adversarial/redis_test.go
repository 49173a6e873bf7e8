package adversarial

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/rueidis"

	wsredis "github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/internal/redistest"
)

// TestRedisForgeryAndReplay gives the attacker read and write access to
// the Redis that two nodes share, with an HMAC key the attacker does not
// have. A frame published straight into a tenant's channel reaches nobody;
// a genuine broadcast captured and published again reaches its recipients
// once; both are counted.
func TestRedisForgeryAndReplay(t *testing.T) {
	rs := redistest.Start(t)
	key := []byte("relay-key-0123456789abcdef")
	broker := func() *wsredis.Broker {
		b, err := wsredis.New(wsredis.Options{Addrs: []string{rs.Addr()}, HMACKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return b // closed by the hub's shutdown
	}
	bBroker := broker()
	a, bNode := Start(t, Config{Broker: broker()}), Start(t, Config{Broker: bBroker})
	bob := bNode.Connect(t, Token(t, jwt.MapClaims{"sub": "bob", "tenant_id": "t1"}))
	const channel = wsredis.DefaultPrefix + "room:tenant:t1"

	raw, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{rs.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	inject := func(msg string) {
		t.Helper()
		if err := raw.Do(context.Background(), raw.B().Publish().Channel(channel).Message(msg).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	marker := func(name string) {
		t.Helper()
		if err := a.Hub.ToTenant(ctx, "t1", name, nil); err != nil {
			t.Fatal(err)
		}
		if f := bob.Read(); f.Event != name {
			t.Fatalf("bob got %+v before %s", f, name)
		}
	}

	t.Run("forged_frame_reaches_nobody", func(t *testing.T) {
		inject(`{"type":"event","event":"pwned","room":"tenant:t1","data":{"title":"click here"}}`)
		marker("after.forgery")
		if st := bBroker.Stats(); st.Rejected != 1 {
			t.Fatalf("stats %+v, want the forgery rejected", st)
		}
	})
	t.Run("captured_broadcast_replayed_three_times_arrives_once", func(t *testing.T) {
		captured := capture(t, raw, channel, func() {
			if err := a.Hub.ToTenant(ctx, "t1", "genuine", nil); err != nil {
				t.Fatal(err)
			}
		})
		if f := bob.Read(); f.Event != "genuine" {
			t.Fatalf("bob got %+v", f)
		}
		for range 3 {
			inject(captured)
		}
		marker("after.replay")
		if st := bBroker.Stats(); st.Replayed != 3 {
			t.Fatalf("stats %+v, want 3 replays refused", st)
		}
	})
}

// capture subscribes to channel, runs send, and returns the first message
// published there.
func capture(t *testing.T, c rueidis.Client, channel string, send func()) string {
	t.Helper()
	got := make(chan string, 1)
	subscribed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	dc, release := c.Dedicate()
	defer release()
	wait := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			select {
			case got <- m.Message:
			default:
			}
		},
		OnSubscription: func(s rueidis.PubSubSubscription) {
			if s.Kind == "subscribe" {
				close(subscribed)
			}
		},
	})
	go func() { done <- dc.Do(ctx, dc.B().Subscribe().Channel(channel).Build()).Error() }()
	defer func() {
		cancel()
		dc.Close()
		<-done
		<-wait
	}()
	select {
	case <-subscribed:
	case <-time.After(Wait):
		t.Fatal("the capturing subscription did not start")
	}
	send()
	select {
	case m := <-got:
		return m
	case <-time.After(Wait):
		t.Fatalf("nothing captured on %s", channel)
		return ""
	}
}
