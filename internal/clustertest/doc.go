// Package clustertest holds the cross-node integration tests: several
// hubs, each behind its own loopback HTTP server and its own adapter/redis
// broker, sharing real redis-server processes started by
// internal/redistest. Real WebSocket clients count what each connection
// receives.
//
// The package has no code outside its tests. Some tests run a hub in a
// child process (the test binary re-executed in helper mode) so that it
// can be killed without any cleanup, or so that a large run is not bound
// by one process's file descriptors:
//
//	go test ./internal/clustertest/
//	WSGATE_FANOUT_CONNS=5000 go test -run TestCrossNodeBroadcastCost -v ./internal/clustertest/
//
// Tests that pin bugs of other packages are skipped unless
// WSGATE_KNOWN_BUGS=1; they fail until the bug is fixed.
package clustertest
