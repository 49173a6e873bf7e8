// Package sessiontest checks that an adapter.SessionStore behaves as the
// interface documents, so that every implementation is held to the same
// specification. Its tests call Run with a constructor of fresh stores:
//
//	func TestSessions(t *testing.T) {
//		sessiontest.Run(t, func(t *testing.T) adapter.SessionStore {
//			s := memory.NewSessions(memory.SessionsOptions{})
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The checks that involve expiry use TTLs of tens of milliseconds and wait
// for the records to be gone with a generous bound, so they pass on a
// loaded machine; they never fail a store for being late by a few
// milliseconds.
package sessiontest
