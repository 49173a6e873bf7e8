package redis

import (
	"context"
	"testing"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/internal/redistest"
)

// One rueidis client serves the broker, the limiter and the application;
// the broker works through it and leaves it open when it closes.
func TestSharedClient(t *testing.T) {
	srv := redistest.Start(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	a, sa := node(t, Options{Client: client})
	b, _ := node(t, Options{Addrs: []string{srv.Addr()}})
	subscribe(t, a, "room:shared")
	publish(t, b, "room:shared", []byte("through the shared client"))
	sa.expect(t, "room:shared", []byte("through the shared client"))

	limiter, err := NewLimiter(LimiterOptions{Client: client, PerUser: 2})
	if err != nil {
		t.Fatal(err)
	}
	release, err := limiter.Admit(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	release()
	_ = limiter.Close()

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Do(context.Background(), client.B().Ping().Build()).Error(); err != nil {
		t.Fatalf("the broker closed the client it was given: %v", err)
	}
	for name, o := range map[string]Options{
		"client_and_addrs":    {Client: client, Addrs: []string{srv.Addr()}},
		"client_and_password": {Client: client, Password: "x"},
		"client_and_cluster":  {Client: client, Cluster: true},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
