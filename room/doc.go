// Package room names rooms, decides who may join them, and tracks which
// connections are in which room.
//
// A room name is a kind, optionally followed by a colon and an argument:
// "global", "user:42", "tenant:acme", "conversation:9f1c". Three kinds are
// built in and cannot be redefined: a connection may join user:{id} only for
// its own user id, tenant:{id} only for its own tenant, and global only when
// it carries the configured role. Every other kind is denied unless a Rule
// for it, or a fallback, says otherwise: the default is deny.
//
// Names are ASCII without separators, so they go into logs and broker topics
// as they are; an id with other bytes is escaped (see Escape) when it
// becomes an argument. User and Tenant build the built-in names, and every
// id auth.JWT accepts has one: "alice" gives "user:alice",
// "auth0|507f1f77bcf86cd799439011" gives
// "user:auth0%7C507f1f77bcf86cd799439011". Plain ids keep their plain
// names, and no escaped id can take a plain id's room.
//
// A Rule receives the name parsed. It answers false to deny; an error means
// it could not decide (its database is down), which refuses the join without
// calling it a denial, so the client hears INTERNAL and the log the cause:
//
//	policy, err := room.NewPolicy(room.PolicyOptions{
//		GlobalRole: "admin",
//		Rules: map[string]room.Rule{
//			"project": func(ctx context.Context, id auth.Identity, r room.Name) (bool, error) {
//				return db.IsMember(ctx, r.Arg, id.UserID) // project:{id}
//			},
//		},
//	})
//	if err != nil {
//		return err
//	}
//	err = policy.CanJoin(ctx, id, "project:p1")
//	// nil: allowed; errors.Is(err, room.ErrForbidden): denied; else failed
//
// The membership index:
//
//	index := room.NewIndex[*Conn](0) // at most 100 rooms per connection
//	first, err := index.Join("tenant:acme", conn)
//
// Index is the membership table that broadcasts read: it is sharded by room
// name so that delivering to one room never waits for joins and leaves in
// unrelated rooms.
package room
