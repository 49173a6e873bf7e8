package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
)

// MaxLabelValues bounds the distinct values one label may take.
const MaxLabelValues = 256

// Options configures the metrics.
type Options struct {
	// Namespace prefixes every metric name. Default "wsgate".
	Namespace string
	// Buckets for the handler and publish latency histograms, in seconds.
	// Default: 0.5 ms to 10 s.
	Buckets []float64
}

// Metrics implements hub.Observer and guard.Observer on Prometheus
// collectors.
type Metrics struct {
	open          prometheus.Gauge
	connects      prometheus.Counter
	disconnects   *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
	messagesIn    *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	messagesOut   prometheus.Counter
	drops         prometheus.Counter
	slowConsumers prometheus.Counter
	handlerDur    *prometheus.HistogramVec
	publishDur    prometheus.Histogram
	publishErrors prometheus.Counter

	reg       prometheus.Registerer
	namespace string
	labels    labelSet
}

// ReadinessTimeout bounds the readiness check behind the ready gauge at
// each scrape.
const ReadinessTimeout = time.Second

var (
	_ hub.Observer   = (*Metrics)(nil)
	_ guard.Observer = (*Metrics)(nil)
)

// New creates the collectors and registers them on reg, which is required.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: a prometheus.Registerer is required (wsgate never registers globally by itself)")
	}
	ns := opts.Namespace
	if ns == "" {
		ns = "wsgate"
	}
	buckets := opts.Buckets
	if buckets == nil {
		buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
	}
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		open:          prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connections", Help: "Authenticated WebSocket connections open on this node."}),
		connects:      counter("connects_total", "Authenticated connections established."),
		disconnects:   vec("disconnects_total", "Authenticated connections ended, by reason.", "reason"),
		refusals:      vec("handshake_refusals_total", "Requests refused before the upgrade, by reason.", "reason"),
		authFailures:  vec("auth_failures_total", "Credentials that failed verification, by reason.", "reason"),
		messagesIn:    vec("messages_in_total", "Inbound messages by event and outcome.", "event", "outcome"),
		rateLimited:   vec("rate_limited_total", "Inbound messages refused by a rate limit, by event.", "event"),
		messagesOut:   counter("messages_out_total", "Frames queued to local connections by broadcasts."),
		drops:         counter("send_queue_drops_total", "Frames dropped because a send queue was full (Drop policy)."),
		slowConsumers: counter("slow_consumer_disconnects_total", "Connections closed because their send queue overflowed."),
		handlerDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "handler_duration_seconds", Help: "Time handlers took, by event.", Buckets: buckets,
		}, []string{"event"}),
		publishDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "broker_publish_duration_seconds", Help: "Time to hand a broadcast to the broker.", Buckets: buckets,
		}),
		publishErrors: counter("broker_publish_errors_total", "Broadcasts the broker refused."),
		reg:           reg,
		namespace:     ns,
		labels:        labelSet{seen: make(map[string]map[string]struct{})},
	}
	for _, c := range []prometheus.Collector{
		m.open, m.connects, m.disconnects, m.refusals, m.authFailures, m.messagesIn, m.rateLimited,
		m.messagesOut, m.drops, m.slowConsumers, m.handlerDur, m.publishDur, m.publishErrors,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// WatchReadiness registers the gauge "<namespace>_ready": 1 while ready
// returns nil, 0 otherwise, asked at each scrape within ReadinessTimeout.
// Pass the hub's Ready method once the hub exists (the hub needs the
// Metrics first, as its Observer):
//
//	m, _ := metrics.New(reg, metrics.Options{})
//	h, _ := hub.New(hub.Options{Authenticator: authn, Observer: m})
//	err := m.WatchReadiness(h.Ready)
//
// A scrape then sees what a readiness probe sees: false while the hub
// shuts down or its broker is unreachable. It fails if called twice.
func (m *Metrics) WatchReadiness(ready func(context.Context) error) error {
	if ready == nil {
		return errors.New("metrics: WatchReadiness needs a readiness func")
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: m.namespace, Name: "ready",
		Help: "1 while the node is ready for new connections (hub and broker healthy), 0 otherwise.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), ReadinessTimeout)
		defer cancel()
		if ready(ctx) != nil {
			return 0
		}
		return 1
	})
	if err := m.reg.Register(g); err != nil {
		return fmt.Errorf("metrics: register ready: %w", err)
	}
	return nil
}

// Refused implements hub.Observer and guard.Observer.
func (m *Metrics) Refused(reason string) {
	m.refusals.WithLabelValues(m.labels.bound("refusal", reason)).Inc()
}

// AuthFailed implements hub.Observer.
func (m *Metrics) AuthFailed(reason string) {
	m.authFailures.WithLabelValues(m.labels.bound("auth", reason)).Inc()
}

// Connected implements hub.Observer.
func (m *Metrics) Connected() {
	m.open.Inc()
	m.connects.Inc()
}

// Disconnected implements hub.Observer.
func (m *Metrics) Disconnected(reason string, _ time.Duration) {
	m.open.Dec()
	m.disconnects.WithLabelValues(m.labels.bound("disconnect", reason)).Inc()
}

// MessageIn implements hub.Observer.
func (m *Metrics) MessageIn(event, outcome string) {
	event = m.labels.bound("event", event)
	m.messagesIn.WithLabelValues(event, m.labels.bound("outcome", outcome)).Inc()
	if outcome == "rate_limited" {
		m.rateLimited.WithLabelValues(event).Inc()
	}
}

// HandlerDone implements hub.Observer.
func (m *Metrics) HandlerDone(event string, d time.Duration) {
	m.handlerDur.WithLabelValues(m.labels.bound("event", event)).Observe(d.Seconds())
}

// Delivered implements hub.Observer.
func (m *Metrics) Delivered(n int) { m.messagesOut.Add(float64(n)) }

// Dropped implements hub.Observer.
func (m *Metrics) Dropped() { m.drops.Inc() }

// SlowConsumer implements hub.Observer.
func (m *Metrics) SlowConsumer() { m.slowConsumers.Inc() }

// Published implements hub.Observer.
func (m *Metrics) Published(_ string, d time.Duration, err error) {
	m.publishDur.Observe(d.Seconds())
	if err != nil {
		m.publishErrors.Inc()
	}
}

// labelSet caps the distinct values per label.
type labelSet struct {
	mu   sync.Mutex // guards seen
	seen map[string]map[string]struct{}
}

func (s *labelSet) bound(label, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := s.seen[label]
	if vals == nil {
		vals = make(map[string]struct{})
		s.seen[label] = vals
	}
	if _, ok := vals[value]; ok {
		return value
	}
	if len(vals) >= MaxLabelValues {
		return "_other"
	}
	vals[value] = struct{}{}
	return value
}
