package hub

import (
	"context"
	"errors"
	"fmt"
)

// PresenceEraser is implemented by a Presence store that can forget a
// user: EraseUser removes every entry of userID, in every room, on every
// node. adapter/redis's Presence implements it.
type PresenceEraser interface {
	EraseUser(ctx context.Context, userID string) error
}

// EraseUser deletes what the hub keeps about userID, for a deletion request:
// the history of their user room (what ToUser and broadcasts to their room
// sent, kept for Options.History["user"].TTL at most) and, when
// Options.Presence implements PresenceEraser, their presence entries. The
// next message to the user starts a new epoch, so a client holding an old
// position is told it cannot recover.
//
// It does not disconnect the user: a connection still open is present
// again at its store's next refresh, and receives what is sent to it next.
// To remove the user entirely, call DisconnectUser first. Messages the user
// sent to shared rooms are the rooms' history, which expires with the
// rooms' TTL.
func (h *Hub) EraseUser(ctx context.Context, userID string) error {
	if userID == "" {
		return fmt.Errorf("hub: EraseUser: empty user id")
	}
	var errs []error
	if err := h.broker.Erase(ctx, topicUserPrefix+userID); err != nil {
		errs = append(errs, fmt.Errorf("hub: erase the history of a user: %w", err))
	}
	if pe, ok := h.opts.Presence.(PresenceEraser); ok {
		if err := pe.EraseUser(ctx, userID); err != nil {
			errs = append(errs, fmt.Errorf("hub: erase the presence of a user: %w", err))
		}
	}
	return errors.Join(errs...)
}
