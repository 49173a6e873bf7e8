package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Defaults of JWKSOptions.
const (
	DefaultJWKSRefresh    = time.Hour
	DefaultJWKSUnknownKey = time.Minute
	DefaultJWKSTimeout    = 10 * time.Second
)

// JWKSOptions tunes the key set fetched from JWTOptions.JWKSURL. The zero
// value is the documented defaults.
type JWKSOptions struct {
	// RefreshInterval is how often the whole set is fetched again, so that
	// removed keys stop verifying. Default DefaultJWKSRefresh.
	RefreshInterval time.Duration
	// UnknownKeyInterval is the least time between two fetches caused by a
	// token whose kid the set does not hold: the first such token after a
	// key rotation fetches the new set at once, while a flood of tokens
	// with made-up kids costs at most one fetch per interval (the tokens
	// in between are refused as invalid, without waiting). Default
	// DefaultJWKSUnknownKey.
	UnknownKeyInterval time.Duration
	// Timeout bounds one fetch. Default DefaultJWKSTimeout.
	Timeout time.Duration
	// HTTPClient fetches the set. Default: a client of its own with
	// Timeout.
	HTTPClient *http.Client
	// Logger receives failed fetches (Warn "jwks_fetch_failed") and the
	// first success after them (Info "jwks_fetch_recovered"). Default:
	// discard.
	Logger *slog.Logger
}

// jwks is a key source backed by a JWKS URL through keyfunc. It tells an
// outage (the set could not be fetched) from a token naming a kid the set
// does not hold, so that a JWKS outage is reported as ErrKeyLookup rather
// than as forged tokens.
type jwks struct {
	kf     keyfunc.Keyfunc
	cancel context.CancelFunc // stops the refresh goroutine
	log    *slog.Logger

	mu      sync.Mutex // guards the fields below
	fetched bool       // a fetch succeeded once: the set is usable
	lastErr error      // the last fetch failed with it; nil after a success
}

// newJWKS validates the URL and options, fetches the set once (a failure
// is not fatal: keys are fetched again on the next unknown kid) and starts
// the refresh.
func newJWKS(rawURL string, o JWKSOptions) (*jwks, error) {
	if err := checkJWKSURL(rawURL); err != nil {
		return nil, err
	}
	if o.RefreshInterval < 0 || o.UnknownKeyInterval < 0 || o.Timeout < 0 {
		return nil, fmt.Errorf("%w: JWKS durations must not be negative", ErrInvalidOptions)
	}
	refresh := or(o.RefreshInterval, DefaultJWKSRefresh)
	unknown := or(o.UnknownKeyInterval, DefaultJWKSUnknownKey)
	timeout := or(o.Timeout, DefaultJWKSTimeout)
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	j := &jwks{log: o.Logger}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	remote, err := jwkset.NewStorageFromHTTP(rawURL, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       ctx,
		HTTPTimeout:               timeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       func(_ context.Context, err error) { j.failed(err) },
		RefreshInterval:           refresh,
		// A successful fetch replaces the whole set through this storage,
		// which is how the source learns that the JWKS is reachable.
		Storage: &fetchWatch{MemoryJWKSet: jwkset.NewMemoryStorage(), ok: j.succeeded},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: JWKSURL: %w", ErrInvalidOptions, err)
	}
	storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{rawURL: remote},
		// Wait for the unknown-kid limiter only when a fetch is due within
		// this bound; otherwise refuse at once instead of holding the
		// handshake for up to the whole interval.
		RateLimitWaitMax:  100 * time.Millisecond,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknown), 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: JWKSURL: %w", ErrInvalidOptions, err)
	}
	// Keys marked for encryption never verify a signature; keys without a
	// "use" are accepted, as most identity providers omit it.
	j.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: storage, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: JWKSURL: %w", ErrInvalidOptions, err)
	}
	return j, nil
}

// checkJWKSURL refuses anything but https, and http to a loopback host:
// keys fetched over plain HTTP from elsewhere could be swapped by anyone on
// the path, who could then sign tokens for any user.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: JWKSURL %q is not an absolute URL", ErrInvalidOptions, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("%w: JWKSURL must be https (http only to a loopback host)", ErrInvalidOptions)
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// key returns the key for t, classifying a failure: while the set cannot
// be fetched it is ErrKeyLookup; otherwise the token names a key the set
// does not hold (or holds for another algorithm), and it is invalid.
func (j *jwks) key(ctx context.Context, t *jwt.Token) (any, error) {
	key, err := j.kf.KeyfuncCtx(ctx)(t)
	if err == nil {
		return key, nil
	}
	if cause := j.outage(); cause != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyLookup, cause)
	}
	// jwkset's message quotes the token's kid: keep it out of the error.
	return nil, errUnknownKey
}

// errUnknownKey: the token names a key the key source does not have.
var errUnknownKey = errors.New("no key for the token's kid and algorithm")

// outage returns why the set is unusable, nil while it is fresh.
func (j *jwks) outage() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.lastErr != nil:
		return j.lastErr
	case !j.fetched:
		return errors.New("JWKS not fetched yet")
	}
	return nil
}

func (j *jwks) failed(err error) {
	j.mu.Lock()
	first := j.lastErr == nil
	j.lastErr = fmt.Errorf("JWKS fetch failed: %w", err)
	j.mu.Unlock()
	if first {
		j.log.Warn("jwks_fetch_failed", slog.String("error", err.Error()))
	}
}

func (j *jwks) succeeded() {
	j.mu.Lock()
	recovered := j.lastErr != nil
	j.fetched, j.lastErr = true, nil
	j.mu.Unlock()
	if recovered {
		j.log.Info("jwks_fetch_recovered")
	}
}

func (j *jwks) close() { j.cancel() }

// fetchWatch is the remote set's storage; it reports every successful
// fetch, which replaces the whole set.
type fetchWatch struct {
	*jwkset.MemoryJWKSet
	ok func()
}

func (f *fetchWatch) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if err := f.MemoryJWKSet.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	f.ok()
	return nil
}
