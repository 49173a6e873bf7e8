// Package metrics exports a hub's operational events as Prometheus metrics,
// and the node's readiness as a gauge (WatchReadiness). deploy/ holds
// alerting rules and a Grafana dashboard built on them.
//
// New registers the collectors on the registry the caller passes — never on
// the global default registry unless that is what is passed — and returns an
// Observer for hub.Options.Observer and the guard options' Observer field:
//
//	reg := prometheus.NewRegistry()
//	m, err := metrics.New(reg, metrics.Options{})
//	...
//	h, err := hub.New(hub.Options{Authenticator: authn, Observer: m})
//	origins, err := guard.NewOrigins(guard.OriginOptions{Allowed: allowed, Observer: m})
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every label value comes from a bounded set (the hub folds unregistered
// events into one label); as a second line of defence each label keeps at
// most MaxLabelValues distinct values and folds the rest into "_other".
package metrics
