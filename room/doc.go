// Package room names rooms, decides who may join them, and tracks which
// connections are in which room.
//
// A room name is a kind, optionally followed by a colon and an argument:
// "global", "user:42", "tenant:acme", "conversation:9f1c". Three kinds are
// built in and cannot be redefined: a connection may join user:{id} only for
// its own user id, tenant:{id} only for its own tenant, and global only when
// it carries the configured role. Every other kind is denied unless a rule
// for it, or a fallback, says otherwise (requirement S9: default deny).
//
// The smallest use:
//
//	policy, err := room.NewPolicy(room.PolicyOptions{GlobalRole: "admin"})
//	if err != nil {
//		return err
//	}
//	if err := policy.CanJoin(ctx, id, "tenant:acme"); err != nil {
//		return err // errors.Is(err, room.ErrForbidden)
//	}
//	index := room.NewIndex[*Conn](0) // at most 100 rooms per connection
//	first, err := index.Join("tenant:acme", conn)
//
// Index is the membership table that broadcasts read: it is sharded by room
// name so that delivering to one room never waits for joins and leaves in
// unrelated rooms.
package room
