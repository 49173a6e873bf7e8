package hub_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	wsproto "github.com/wsgate/wsgate/protocol"
)

type traceKey struct{}

// The upgrade request's context reaches handlers (what its middleware put
// there survives the upgrade), with what the hub kept of the request.
func TestRequestContextReachesHandlers(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.ConnContext = func(ctx context.Context, r *http.Request) context.Context {
			return context.WithValue(ctx, traceKey{}, "trace-"+r.Header.Get("X-Trace"))
		}
	})
	hub.Handle(e.hub, "whoami", func(ctx hub.Context, _ struct{}) (map[string]string, error) {
		trace, _ := ctx.Value(traceKey{}).(string)
		info := ctx.Conn()
		return map[string]string{"trace": trace, "path": info.Request.Path, "ua": info.Request.UserAgent, "conn": info.ConnID}, nil
	})
	h := e.header(token(t, claims{sub: "ann"}))
	h.Set("X-Trace", "42")
	h.Set("User-Agent", "embed-test")
	c := e.connectWith(h)
	c.send(map[string]any{"type": "event", "id": 1, "event": "whoami"})
	f := c.next()
	for _, want := range []string{`"trace":"trace-42"`, `"path":"/"`, `"ua":"embed-test"`, `"conn":"` + c.connID() + `"`} {
		if !strings.Contains(string(f.Data), want) {
			t.Fatalf("ack %s lacks %s", f.Data, want)
		}
	}
}

// Connect and disconnect hooks see the identity, the connection id and the
// reason, and run outside the hub's locks: they may call back into the hub.
func TestConnectAndDisconnectHooks(t *testing.T) {
	type ev struct{ kind, conn, user, reason string }
	var mu sync.Mutex
	var seen []ev
	var e *env
	e = newEnv(t, func(o *hub.Options) {
		o.OnConnect = func(info hub.ConnInfo) {
			_ = e.hub.Connections() // a hub lock held here would deadlock or race
			_ = e.hub.JoinConn(info.ConnID, "lobby")
			mu.Lock()
			seen = append(seen, ev{"connect", info.ConnID, info.Identity.UserID, ""})
			mu.Unlock()
		}
		o.OnDisconnect = func(info hub.ConnInfo, reason string) {
			_, _ = e.hub.Presence(context.Background(), "lobby")
			mu.Lock()
			seen = append(seen, ev{"disconnect", info.ConnID, info.Identity.UserID, reason + "/" + toString(info.State("mood"))})
			mu.Unlock()
		}
	})
	hub.Handle(e.hub, "mood", func(ctx hub.Context, in string) (struct{}, error) {
		ctx.SetState("mood", in)
		return struct{}{}, nil
	})
	c := e.connect(claims{sub: "hooked"})
	c.send(map[string]any{"type": "event", "id": 1, "event": "mood", "data": "sunny"})
	c.next()
	c.ws.CloseNow()
	eventually(t, "both hooks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 2
	})
	want := []ev{{"connect", c.connID(), "hooked", ""}, {"disconnect", c.connID(), "hooked", "connection_lost/sunny"}}
	if !slices.Equal(seen, want) {
		t.Fatalf("hooks saw %+v, want %+v", seen, want)
	}
}

func toString(v any) string { s, _ := v.(string); return s }

// Middleware wraps every handler, outermost first; it sees the event and
// the validated input, and may refuse without calling the handler.
func TestMiddleware(t *testing.T) {
	e := newEnv(t, nil)
	var order []string
	var mu sync.Mutex
	record := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	e.hub.Use(func(next hub.HandlerFunc) hub.HandlerFunc {
		return func(ctx hub.Context, in any) (any, error) {
			record("outer:" + ctx.Event())
			return next(ctx, in)
		}
	}, func(next hub.HandlerFunc) hub.HandlerFunc {
		return func(ctx hub.Context, in any) (any, error) {
			if ctx.Event() == "admin:purge" && !slices.Contains(ctx.Identity().Roles, "admin") {
				return nil, hub.Errorf(hub.CodeForbidden, "admins only")
			}
			record("inner")
			return next(ctx, in)
		}
	})
	var purged atomic.Bool
	hub.Handle(e.hub, "admin:purge", func(ctx hub.Context, in struct{}) (struct{}, error) {
		purged.Store(true)
		return struct{}{}, nil
	})
	hub.Handle(e.hub, "echo", func(ctx hub.Context, in string) (string, error) { record("handler"); return in, nil })
	c := e.connect(claims{sub: "user"})
	c.send(map[string]any{"type": "event", "id": 1, "event": "admin:purge"})
	if f := c.next(); f.Code != hub.CodeForbidden || purged.Load() {
		t.Fatalf("got %+v (purged %v), want FORBIDDEN without the handler", f, purged.Load())
	}
	c.send(map[string]any{"type": "event", "id": 2, "event": "echo", "data": "x"})
	if f := c.next(); f.Type != "ack" || string(f.Data) != `"x"` {
		t.Fatalf("got %+v", f)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"outer:admin:purge", "outer:echo", "inner", "handler"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

// A context derived from a handler's keeps the hub's methods through
// WithContext, or recovers them with FromContext.
func TestContextSurvivesDerivation(t *testing.T) {
	e := newEnv(t, nil)
	hub.Handle(e.hub, "derive", func(ctx hub.Context, _ struct{}) (struct{}, error) {
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := ctx.WithContext(tctx).Emit("via-with-context", nil); err != nil {
			return struct{}{}, err
		}
		back, ok := hub.FromContext(tctx)
		if !ok || back.ConnID() != ctx.ConnID() {
			return struct{}{}, errors.New("FromContext lost the connection")
		}
		return struct{}{}, back.Emit("via-from-context", nil)
	})
	c := e.connect(claims{sub: "d"})
	c.send(map[string]any{"type": "event", "id": 1, "event": "derive"})
	assertNext(t, c, "via-with-context")
	assertNext(t, c, "via-from-context")
	if f := c.next(); f.Type != "ack" {
		t.Fatalf("got %+v", f)
	}
	if _, ok := hub.FromContext(context.Background()); ok {
		t.Fatal("FromContext found a call in a plain context")
	}
}

// A handler knows which rooms its connection is in.
func TestContextRooms(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.Rooms = allowAll })
	hub.Handle(e.hub, "rooms", func(ctx hub.Context, _ struct{}) ([]string, error) {
		r := ctx.Rooms()
		slices.Sort(r)
		if !ctx.InRoom("topic:x") || ctx.InRoom("topic:y") {
			return nil, errors.New("InRoom is wrong")
		}
		return r, nil
	})
	c := e.connect(claims{sub: "r", tenant: "t1"})
	join(c, 1, "topic:x")
	c.send(map[string]any{"type": "event", "id": 2, "event": "rooms"})
	if f := c.next(); string(f.Data) != `["tenant:t1","topic:x","user:r"]` {
		t.Fatalf("got %+v (%s)", f, f.Data)
	}
}

type item struct {
	SKU string `json:"sku" validate:"required,sku"`
}

// Slice inputs are validated element by element; services add their own
// tags; an *Error's cause is logged, never sent.
func TestValidationAndErrorCauses(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.hub.RegisterValidation("sku", func(v reflect.Value) bool { return strings.HasPrefix(v.String(), "SKU-") }); err != nil {
		t.Fatal(err)
	}
	hub.Handle(e.hub, "order", func(ctx hub.Context, in []item) (int, error) { return len(in), nil })
	hub.Handle(e.hub, "fail", func(ctx hub.Context, _ struct{}) (struct{}, error) {
		return struct{}{}, &hub.Error{Code: hub.CodeForbidden, Message: "not now", Cause: errors.New("inventory db: secret-detail")}
	})
	c := e.connect(claims{sub: "shopper"})
	c.send(map[string]any{"type": "event", "id": 1, "event": "order", "data": []map[string]string{{"sku": "SKU-1"}, {"sku": "bogus"}}})
	if f := c.next(); f.Code != hub.CodeInvalidMessage || !strings.Contains(f.Message, "sku") {
		t.Fatalf("got %+v, want INVALID_MESSAGE naming sku", f)
	}
	c.send(map[string]any{"type": "event", "id": 2, "event": "order", "data": []map[string]string{{"sku": "SKU-1"}}})
	if f := c.next(); f.Type != "ack" || string(f.Data) != "1" {
		t.Fatalf("got %+v", f)
	}
	c.send(map[string]any{"type": "event", "id": 3, "event": "fail"})
	if f := c.next(); f.Code != hub.CodeForbidden || strings.Contains(f.Message, "secret") {
		t.Fatalf("got %+v", f)
	}
	eventually(t, "the cause in the log", func() bool { return strings.Contains(e.log.String(), "inventory db: secret-detail") })
}

// New refuses the options that would silently break a service.
func TestNewRefusesTraps(t *testing.T) {
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]hub.Options{
		"rate_without_burst":       {EventRate: hub.Limit{Rate: 5}},
		"negative_burst":           {MessageRate: hub.Limit{Rate: 5, Burst: -1}},
		"negative_queue":           {SendQueueBytes: -1},
		"negative_write_timeout":   {WriteTimeout: -time.Second},
		"negative_rooms_per_conn":  {MaxRoomsPerConn: -3},
		"ping_rate_without_burst":  {ClientPingRate: hub.Limit{Rate: 1}},
		"negative_idle_timeout":    {IdleTimeout: -time.Minute},
		"negative_compress_thresh": {CompressionThreshold: -1},
	} {
		t.Run(name, func(t *testing.T) {
			o.Authenticator = authn
			if _, err := hub.New(o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Run("slice_of_sanitized_structs_panics_at_registration", func(t *testing.T) {
		h, err := hub.New(hub.Options{Authenticator: authn})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		hub.Handle(h, "bad", func(ctx hub.Context, in []struct {
			Text string `json:"text" sanitize:"html"`
		}) (struct{}, error) {
			return struct{}{}, nil
		})
	})
}

// keyOutage authenticates nothing: its keys cannot be fetched.
type keyOutage struct{}

func (keyOutage) Authenticate(context.Context, string) (auth.Identity, error) {
	return auth.Identity{}, auth.ErrKeyLookup
}

// A JWKS outage is not a bad credential: 503, so the client keeps it and
// comes back; an Admit refusal is answered and counted by its own code.
func TestRefusalsByCause(t *testing.T) {
	obs := &refusals{}
	e := newEnv(t, func(o *hub.Options) {
		o.Observer = obs
		o.Authenticator = keyOutage{}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := e.dialRaw(ctx, e.header("any.token.here"))
	if err == nil {
		t.Fatal("connected without keys")
	}
	assertRefusal(t, resp, http.StatusServiceUnavailable, "UNAVAILABLE")
	e2 := newEnv(t, func(o *hub.Options) {
		o.Observer = obs
		o.Admit = func(context.Context, string) (func(), error) {
			return nil, &wsproto.Refusal{Status: http.StatusServiceUnavailable, Code: wsproto.CodeUnavailable, Message: "limiter down"}
		}
	})
	_, resp, err = e2.dialRaw(ctx, e2.header(token(t, claims{sub: "x"})))
	if err == nil {
		t.Fatal("connected past a failing limiter")
	}
	assertRefusal(t, resp, http.StatusServiceUnavailable, "UNAVAILABLE")
	if got := obs.list(); !slices.Equal(got, []string{"key_lookup", "limiter_unavailable"}) {
		t.Fatalf("refusals counted as %v", got)
	}
	for _, want := range []string{`"msg":"connection refused"`, `"event":"key_lookup"`} {
		if !strings.Contains(e.log.String(), want) {
			t.Fatalf("log lacks %s: %s", want, e.log.String())
		}
	}
}

type refusals struct {
	hub.NopObserver
	mu  sync.Mutex
	got []string
}

func (r *refusals) Refused(reason string) { r.mu.Lock(); r.got = append(r.got, reason); r.mu.Unlock() }
func (r *refusals) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// AutoRooms that fails (its lookup is down) closes the connection with
// 1011 instead of leaving it outside its rooms.
func TestAutoRoomsFailure(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.AutoRooms = func(context.Context, auth.Identity) ([]string, error) { return nil, errors.New("directory down") }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := e.dialRaw(ctx, e.header(token(t, claims{sub: "x"})))
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ws: ws}
	if got := c.closeStatus(); got != 1011 {
		t.Fatalf("close %d, want 1011", got)
	}
}
