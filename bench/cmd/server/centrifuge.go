package main

import (
	"context"
	"net/http"

	"github.com/centrifugal/centrifuge"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
)

// centrifugeServer is Centrifuge used the ordinary way: the client sends its
// JWT in the connect command, the connecting handler verifies it (HS256,
// same checks as the others), subscribes the connection to the room on the
// server side and sets the expiry; RPC "echo" replies with its data.
type centrifugeServer struct{ node *centrifuge.Node }

func newCentrifuge() (*centrifugeServer, error) {
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelNone})
	if err != nil {
		return nil, err
	}
	node.OnConnecting(func(_ context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		sub, exp, err := benchauth.Verify(e.Token)
		if err != nil {
			return centrifuge.ConnectReply{}, centrifuge.DisconnectInvalidToken
		}
		return centrifuge.ConnectReply{
			Credentials:   &centrifuge.Credentials{UserID: sub, ExpireAt: exp.Unix()},
			Subscriptions: map[string]centrifuge.SubscribeOptions{Room: {}},
		}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnRPC(func(e centrifuge.RPCEvent, cb centrifuge.RPCCallback) {
			cb(centrifuge.RPCReply{Data: e.Data}, nil)
		})
		// Like wsgate, a connection ends when its token expires.
		c.OnRefresh(func(_ centrifuge.RefreshEvent, cb centrifuge.RefreshCallback) {
			cb(centrifuge.RefreshReply{Expired: true}, nil)
		})
	})
	if err := node.Run(); err != nil {
		return nil, err
	}
	return &centrifugeServer{node: node}, nil
}

func (s *centrifugeServer) Handler() http.Handler {
	return centrifuge.NewWebsocketHandler(s.node, centrifuge.WebsocketConfig{})
}

func (s *centrifugeServer) Broadcast(payload []byte) error {
	_, err := s.node.Publish(Room, payload)
	return err
}

func (s *centrifugeServer) Conns() int { return s.node.Hub().NumClients() }
