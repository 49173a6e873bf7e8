package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
)

// wsgateRoom is the benchmark room in wsgate's naming (kind:arg).
const wsgateRoom = "bench:" + Room

// wsgateServer is the hub as a user would mount it: JWT authenticator,
// defaults for everything else (origin check, rate limits, queues,
// heartbeats), every connection joined to one room on connect, and an
// "echo" handler whose ack carries the request's data back.
type wsgateServer struct{ h *hub.Hub }

// echo is the echo request's data.
type echo struct {
	ETS int64 `json:"ets"`
}

// benchHistory is the history the -history flag turns on: the bench room
// keeps its last 1,000 broadcasts for 5 minutes.
var benchHistory = map[string]hub.HistoryPolicy{
	"bench": {Size: 1000, TTL: 5 * time.Minute},
}

func newWsgate(redisAddr string, history bool) (*wsgateServer, error) {
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: benchauth.Secret})
	if err != nil {
		return nil, err
	}
	var broker adapter.Broker
	if redisAddr != "" {
		if broker, err = newRedisBroker(redisAddr); err != nil {
			return nil, err
		}
	}
	opts := hub.Options{
		CloseBroker:   true,
		Authenticator: authn,
		Broker:        broker,
		AutoRooms:     func(context.Context, auth.Identity) ([]string, error) { return []string{wsgateRoom}, nil },
	}
	if history {
		opts.History = benchHistory
	}
	h, err := hub.New(opts)
	if err != nil {
		return nil, err
	}
	hub.Handle(h, "echo", func(_ hub.Context, in echo) (echo, error) { return in, nil })
	return &wsgateServer{h: h}, nil
}

func (s *wsgateServer) Handler() http.Handler { return s.h }

func (s *wsgateServer) Broadcast(payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.h.Broadcast(ctx, wsgateRoom, "tick", json.RawMessage(payload)); err != nil {
		return fmt.Errorf("wsgate broadcast: %w", err)
	}
	return nil
}

func (s *wsgateServer) Conns() int { return s.h.Connections() }

// Shutdown shuts the hub down gracefully (1012 to every client), for the
// recovery storm.
func (s *wsgateServer) Shutdown(ctx context.Context) error { return s.h.Shutdown(ctx) }
