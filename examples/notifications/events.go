package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/hub"
)

// Roles the example gives meaning to. SUPER_ADMIN is the hub's GlobalRole:
// its connections join the "global" room, as in the audited gateway.
const (
	superAdminRole = "SUPER_ADMIN"
	adminRole      = "ADMIN" // administers its own tenant
)

// account is a user as the directory knows it.
type account struct {
	ID     string
	Tenant string // "" for platform accounts
	Roles  []string
}

// directory is the example's stand-in for the user database: it says which
// tenant a user belongs to, which the API needs before a tenant admin may
// notify a single user. It is filled once by newDirectory and only read
// afterwards, so it needs no lock; a real deployment asks its database here,
// which is why look-ups take a context.
type directory struct {
	accounts []account
}

func newDirectory() *directory {
	return &directory{accounts: []account{
		{ID: "alice", Tenant: "acme", Roles: []string{adminRole}},
		{ID: "bob", Tenant: "acme"},
		{ID: "carol", Tenant: "globex"},
		{ID: "root", Roles: []string{superAdminRole}},
	}}
}

func (d *directory) lookup(_ context.Context, user string) (account, bool) {
	for _, a := range d.accounts {
		if a.ID == user {
			return a, true
		}
	}
	return account{}, false
}

// notification is the data of a notification:new event.
type notification struct {
	ID     string `json:"id"`
	Target string `json:"target"`
	// To is the user or tenant id for those targets, empty for global.
	To string `json:"to,omitempty"`
	// Title and Body are HTML-safe text: markup was removed and the
	// characters <, >, &, ' and " are escaped as entities.
	Title     string    `json:"title"`
	Body      string    `json:"body,omitempty"`
	From      string    `json:"from"`
	CreatedAt time.Time `json:"createdAt"`
}

// markRead is the data of a notification:mark-read client event. The hub
// refuses unknown fields and a notificationId that is not a UUID before the
// handler runs.
type markRead struct {
	NotificationID string `json:"notificationId" validate:"required,uuid"`
}

// readNotice is the ack of notification:mark-read and the data of the
// notification:read event the user's other connections receive.
type readNotice struct {
	NotificationID string    `json:"notificationId"`
	ReadAt         time.Time `json:"readAt"`
}

// Event names on the wire.
const (
	eventNew      = "notification:new"
	eventMarkRead = "notification:mark-read"
	eventRead     = "notification:read"
)

// markReadLimit is tighter than the hub's default (10/s, burst 20): a
// person marks a few notifications a second at most, and every mark fans
// out to all of the user's connections on every node.
var markReadLimit = hub.Limit{Rate: 5, Burst: 10}

// registerEvents wires the client events into h.
func registerEvents(h *hub.Hub) {
	hub.Handle(h, eventMarkRead, markAsRead, hub.WithRateLimit(markReadLimit))
}

// markAsRead tells the user's other connections, on every node, that a
// notification was read, so that every open tab updates its badge. A real
// deployment records the read state in its database first; the example
// keeps no notification store, so the id is only relayed, and only to the
// user's own connections.
func markAsRead(ctx hub.Context, in markRead) (readNotice, error) {
	n := readNotice{NotificationID: in.NotificationID, ReadAt: time.Now().UTC()}
	user := ctx.Identity().UserID
	if err := ctx.Hub().ToUser(ctx, user, eventRead, n, hub.Except(ctx.ConnID())); err != nil {
		return readNotice{}, fmt.Errorf("relay read mark: %w", err)
	}
	return n, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// uuidFrom returns the version 8 (custom) UUID made of a hash's first 16
// bytes: the same input, the same id.
func uuidFrom(sum [32]byte) string {
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
