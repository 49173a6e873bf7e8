package clustertest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	wsredis "github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/room"
)

// waitFor bounds every wait; nothing sleeps for a fixed time.
const waitFor = 15 * time.Second

// The shared HS256 secret of every node, and the role of the global room.
const (
	secret     = "clustertest-secret-0123456789abcdef"
	superAdmin = "SUPER_ADMIN"
)

// identity is who a test token is for.
type identity struct {
	user, tenant string
	roles        []string
}

func (id identity) String() string { return id.user }

// token signs a one-hour token for id.
func token(t testing.TB, id identity) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": id.user, "exp": time.Now().Add(time.Hour).Unix()}
	if id.tenant != "" {
		claims["tenant_id"] = id.tenant
	}
	if len(id.roles) > 0 {
		claims["roles"] = id.roles
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// newHubOptions returns the options every node uses, in-process or in a
// helper process: the shared secret, SUPER_ADMIN as the global role, and
// "room:*" rooms open to everyone so that tests can pick their members.
func newHubOptions(broker *wsredis.Broker) (hub.Options, error) {
	verifier, err := auth.NewJWT(auth.JWTOptions{HMACSecret: []byte(secret)})
	if err != nil {
		return hub.Options{}, err
	}
	policy, err := room.NewPolicy(room.PolicyOptions{
		GlobalRole: superAdmin,
		Rules: map[string]room.Rule{"room": func(context.Context, auth.Identity, room.Name) (bool, error) {
			return true, nil
		}},
	})
	if err != nil {
		return hub.Options{}, err
	}
	return hub.Options{Authenticator: verifier, Broker: broker, CloseBroker: true, GlobalRole: superAdmin, Rooms: policy}, nil
}

// node is one hub behind its own loopback HTTP server with its own broker.
type node struct {
	name     string
	hub      *hub.Hub
	broker   *wsredis.Broker
	srv      *httptest.Server
	stopOnce sync.Once
}

// startNode starts a hub on a broker built from ro; mutate adjusts the hub
// options. The node is stopped by t.Cleanup unless stopped before.
func startNode(t *testing.T, name string, ro wsredis.Options, mutate func(*hub.Options)) *node {
	t.Helper()
	b, err := wsredis.New(ro)
	if err != nil {
		t.Fatalf("node %s: broker: %v", name, err)
	}
	opts, err := newHubOptions(b)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&opts)
	}
	h, err := hub.New(opts)
	if err != nil {
		b.Close()
		t.Fatalf("node %s: hub: %v", name, err)
	}
	n := &node{name: name, hub: h, broker: b, srv: httptest.NewServer(h)}
	t.Cleanup(n.stop)
	return n
}

// startNodes starts n nodes named n0, n1, … on brokers built from ro.
func startNodes(t *testing.T, n int, ro wsredis.Options) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, "n"+strconv.Itoa(i), ro, nil)
	}
	return nodes
}

// stop shuts the hub down (which closes the broker) and the HTTP server.
// Clients still connected must be reading, as real clients are, for the
// close handshake to finish before the deadline.
func (n *node) stop() {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = n.hub.Shutdown(ctx)
		n.srv.Close()
	})
}

// frame is any server → client envelope.
type frame struct {
	Type    string          `json:"type"`
	ID      *uint64         `json:"id"`
	Event   string          `json:"event"`
	Room    string          `json:"room"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

func isEvent(name string) func(frame) bool {
	return func(f frame) bool { return f.Type == "event" && f.Event == name }
}

// client is a test WebSocket client. A goroutine reads every frame into a
// list as it arrives, as a browser would, so that the server never sees a
// slow consumer; the test goroutine consumes the list in order.
type client struct {
	t      *testing.T
	id     identity
	node   string
	ws     *websocket.Conn
	connID string
	lastID uint64 // owned by the test goroutine
	seen   int    // frames consumed; owned by the test goroutine

	mu     sync.Mutex // guards frames and err
	frames []frame
	err    error         // why the read loop ended
	poke   chan struct{} // capacity 1: a frame arrived or the loop ended
	done   chan struct{} // closed when the read loop ends
}

func (c *client) String() string { return c.id.user + "@" + c.node }

// dial opens a WebSocket to the node serving url with tok.
func dial(ctx context.Context, url string, tok string) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws", &websocket.DialOptions{
		HTTPHeader:   http.Header{"Origin": {url}, "Authorization": {"Bearer " + tok}},
		Subprotocols: []string{"wsgate.v1"},
	})
}

// connect dials url as id, waits for the welcome and joins rooms.
func connect(t *testing.T, url, nodeName string, id identity, rooms ...string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, resp, err := dial(ctx, url, token(t, id))
	if err != nil {
		t.Fatalf("dial %s as %s: %v (%s)", nodeName, id, err, describe(resp))
	}
	ws.SetReadLimit(1 << 20)
	c := &client{t: t, id: id, node: nodeName, ws: ws, poke: make(chan struct{}, 1), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(c.close)
	_, w := c.take("welcome", func(f frame) bool { return f.Type == "welcome" })
	var data struct {
		ConnectionID string `json:"connectionId"`
	}
	if err := json.Unmarshal(w.Data, &data); err != nil || data.ConnectionID == "" {
		t.Fatalf("welcome %s: %v", w.Data, err)
	}
	c.connID = data.ConnectionID
	// The hub queues the welcome before it joins the automatic rooms, and
	// reads messages only once they are joined (and subscribed on Redis):
	// the first answer proves the connection receives.
	if _, f := c.call(map[string]any{"type": "leave", "room": "none"}); f.Type != "ack" {
		t.Fatalf("%s: leave: %s %s", c, f.Code, f.Message)
	}
	for _, r := range rooms {
		if _, f := c.call(map[string]any{"type": "join", "room": r}); f.Type != "ack" {
			t.Fatalf("%s: join %s: %s %s", c, r, f.Code, f.Message)
		}
	}
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.ws.Read(context.Background())
		c.mu.Lock()
		if err != nil {
			c.err = err
		} else {
			var f frame
			if jerr := json.Unmarshal(b, &f); jerr != nil {
				f = frame{Type: "!invalid", Message: string(b)}
			}
			c.frames = append(c.frames, f)
		}
		c.mu.Unlock()
		select {
		case c.poke <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// take waits for the first unconsumed frame that matches and returns the
// frames before it and the frame; all of them count as consumed.
func (c *client) take(what string, match func(frame) bool) (before []frame, f frame) {
	c.t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := c.seen; i < len(c.frames); i++ {
			if match(c.frames[i]) {
				before = append(before, c.frames[c.seen:i]...)
				f = c.frames[i]
				c.seen = i + 1
				c.mu.Unlock()
				return before, f
			}
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("%s: connection ended (%v) before %s arrived", c, err, what)
		}
		select {
		case <-c.poke:
		case <-deadline.C:
			c.t.Fatalf("%s: no %s within %s", c, what, waitFor)
		}
	}
}

// waitSeen waits until a frame that matches has arrived, consumed or
// not, and returns a copy of every frame received so far. It suits
// messages of several channels whose relative order nothing guarantees.
func (c *client) waitSeen(what string, match func(frame) bool) []frame {
	c.t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if slices.ContainsFunc(c.frames, match) {
			all := slices.Clone(c.frames)
			c.mu.Unlock()
			return all
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("%s: connection ended (%v) before %s arrived", c, err, what)
		}
		select {
		case <-c.poke:
		case <-deadline.C:
			c.t.Fatalf("%s: no %s within %s", c, what, waitFor)
		}
	}
}

// call sends msg with a fresh id and returns the frames before the ack or
// error answering it, and that answer.
func (c *client) call(msg map[string]any) ([]frame, frame) {
	c.t.Helper()
	c.lastID++
	id := c.lastID
	msg["id"] = id
	b, err := json.Marshal(msg)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s: write: %v", c, err)
	}
	return c.take("the answer to message "+strconv.FormatUint(id, 10), func(f frame) bool {
		return (f.Type == "ack" || f.Type == "error") && f.ID != nil && *f.ID == id
	})
}

// waitClosed waits for the connection to end and returns its close status
// and the frames not consumed yet.
func (c *client) waitClosed() (websocket.StatusCode, []frame) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitFor):
		c.t.Fatalf("%s: still open after %s", c, waitFor)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rest := append([]frame(nil), c.frames[c.seen:]...)
	c.seen = len(c.frames)
	return websocket.CloseStatus(c.err), rest
}

// count returns how many frames the client has received so far.
func (c *client) count(match func(frame) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		if match(f) {
			n++
		}
	}
	return n
}

// close drops the connection and waits for the read loop to end.
func (c *client) close() {
	c.ws.CloseNow()
	select {
	case <-c.done:
	case <-time.After(waitFor):
	}
}

func describe(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return resp.Status + " " + strings.TrimSpace(string(b))
}

// eventually polls cond every 10ms until it returns nil or waitFor passes.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	testutil.EventuallyNil(t, waitFor, what, cond)
}

// commandCalls returns the calls count of cmd ("publish") from INFO
// commandstats.
func commandCalls(t testing.TB, srv *redistest.Server, cmd string) int {
	t.Helper()
	info, err := srv.Do("INFO", "commandstats")
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	n, err := redistest.CommandCalls(info, cmd)
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	return n
}

// mustEnvInt reads a positive integer from the environment, or def.
func mustEnvInt(t testing.TB, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}
