package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/internal/testutil"
)

const (
	origin   = "https://app.example.com"
	issuer   = "https://id.example.com/"
	audience = "projects"
	p1       = "5b0e7c1a-2f4d-4e8a-9c3b-7d6e5f4a3b21" // alice and bob
	p2       = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a" // alice
)

// idp is an identity provider: an ES256 key, published as a JWKS by an
// httptest server on loopback.
type idp struct {
	key *ecdsa.PrivateKey
	srv *httptest.Server
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
		"x": b64(point[1:33]), "y": b64(point[33:]),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	return &idp{key: key, srv: srv}
}

func (p *idp) jwksURL() string { return p.srv.URL + "/.well-known/jwks.json" }

func (p *idp) token(t testing.TB, user string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": user, "iss": issuer, "aud": audience, "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(p.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// node is one instance of the service over loopback.
type node struct {
	svc *service
	srv *httptest.Server
	idp *idp
}

func startNode(t *testing.T, p *idp, members *projects, redisAddr string) *node {
	t.Helper()
	cfg := config{
		Origins: []string{origin},
		JWKSURL: p.jwksURL(), Issuer: issuer, Audience: audience,
		Projects: members,
		// Every test client comes from 127.0.0.1.
		Throttle: guard.ThrottleOptions{Attempts: 1000},
	}
	if redisAddr != "" {
		cfg.RedisAddr, cfg.RedisHMACKey = redisAddr, []byte("a-relay-key-shared-by-every-node")
	}
	svc, err := newService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = svc.shutdown(ctx)
		srv.Close()
		svc.close()
	})
	return &node{svc: svc, srv: srv, idp: p}
}

// user is a Go client connected as one user, with the events it received.
type user struct {
	t      *testing.T
	c      *client.Client
	events chan client.Event
}

func (n *node) connect(t *testing.T, name string) *user {
	t.Helper()
	u := &user{t: t, events: make(chan client.Event, 64)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{
		URL:     n.srv.URL + "/ws",
		Origin:  origin,
		Token:   func(context.Context) (string, error) { return n.idp.token(t, name), nil },
		OnEvent: func(ev client.Event) { u.events <- ev },
	})
	if err != nil {
		t.Fatalf("dial as %s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	u.c = c
	return u
}

// next returns the next event, which must be named name.
func (u *user) next(name string) client.Event {
	u.t.Helper()
	select {
	case ev := <-u.events:
		if ev.Name != name {
			u.t.Fatalf("got event %s %s, want %s", ev.Name, ev.Data, name)
		}
		return ev
	case <-time.After(5 * time.Second):
		u.t.Fatalf("no %s event within 5s", name)
	}
	return client.Event{}
}

func (u *user) join(room string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return u.c.Join(ctx, room)
}

func (u *user) comment(project, text string) (CommentAck, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return client.Call[CommentAck](ctx, u.c, "comment", Comment{ProjectID: project, Text: text})
}

func second[T any](_ T, err error) error { return err }

func serverCode(err error) string {
	var se *client.ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// call makes a REST call as user (no token when user is empty) and returns
// the status.
func (n *node) call(t *testing.T, method, path, user string, body any) int {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, n.srv.URL+path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+n.idp.token(t, user))
	}
	resp, err := n.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// inRoom waits until user is (or is not) present in the room on this node.
func (n *node) inRoom(t *testing.T, room, user string, want bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, user+" presence in "+room, func() bool {
		users, err := n.svc.gw.Hub().Presence(context.Background(), room)
		return err == nil && slices.Contains(users, user) == want
	})
}

func (n *node) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := n.srv.Client().Get(n.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
