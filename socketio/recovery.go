package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
	wsproto "github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/socketio/internal/eio"
	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// Recovery configures Socket.IO's connection state recovery on top of the
// hubs' room history: a socket.io-client created with
// connectionStateRecovery that reconnects within MaxDisconnectionDuration
// — to this node or another, after its node shut down or crashed — gets
// socket.recovered === true and every event it missed of every room with
// history it was in, or socket.recovered === false and none of them.
//
// How: the CONNECT of a namespace gives the client a private session id
// (pid), and every event the socket sends carries, as its last argument,
// the positions the socket was sent of its rooms with history (the
// "offset" socket.io-client keeps). A record of the session — its user, its
// rooms, the positions its client was told — is kept in Store from the
// CONNECT on, refreshed while the socket lives and kept for
// MaxDisconnectionDuration after it ends, so that any node can resume it.
// A CONNECT with {pid, offset} takes the record (once), and the hub joins
// the session's rooms again and replays what the client missed (see
// Server and docs/SOCKETIO.md for what is guaranteed).
type Recovery struct {
	// Store keeps the session records: adapter/memory's Sessions for one
	// node, adapter/redis's for several. Required.
	Store adapter.SessionStore
	// MaxDisconnectionDuration is how long a session can be resumed after
	// its connection ended. Default 2 minutes, Socket.IO's; at least 1 s.
	MaxDisconnectionDuration time.Duration
	// Timeout bounds each call to Store. Default 2 s.
	Timeout time.Duration
}

// Defaults of Recovery.
const (
	DefaultMaxDisconnectionDuration = 2 * time.Minute
	DefaultRecoveryTimeout          = 2 * time.Second
)

func (r *Recovery) withDefaults() (*Recovery, error) {
	if r == nil {
		return nil, nil
	}
	o := *r
	switch {
	case o.Store == nil:
		return nil, errors.New("socketio: Recovery.Store is nil")
	case o.MaxDisconnectionDuration < 0 || o.Timeout < 0:
		return nil, errors.New("socketio: a Recovery duration is negative")
	case o.MaxDisconnectionDuration == 0:
		o.MaxDisconnectionDuration = DefaultMaxDisconnectionDuration
	case o.MaxDisconnectionDuration < time.Second:
		return nil, errors.New("socketio: Recovery.MaxDisconnectionDuration is under 1 s")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultRecoveryTimeout
	}
	return &o, nil
}

// refreshEvery is how often the records of live sockets get their TTL
// back: a record lives refreshEvery + MaxDisconnectionDuration past the
// last refresh, so that a crashed node's sessions can be resumed for at
// least MaxDisconnectionDuration.
func (r *Recovery) refreshEvery() time.Duration {
	return max(r.MaxDisconnectionDuration/2, time.Second)
}

// liveTTL is the TTL of the record of a socket that lives, and of the
// tombstone a resume leaves: it outlasts the next refresh by
// MaxDisconnectionDuration.
func (r *Recovery) liveTTL() time.Duration { return r.MaxDisconnectionDuration + r.refreshEvery() }

// record is what the store keeps of a session, as JSON.
type record struct {
	V      int      `json:"v"`
	User   string   `json:"u"`
	Tenant string   `json:"t,omitempty"`
	Nsp    string   `json:"n"`
	Conns  []string `json:"c"` // the session's connections, the latest first: the events they were left out of stay out
	Gen    uint64   `json:"g"` // the connection's offset generation (see appendOffsetLocked)
	Rev    uint64   `json:"r"` // the membership revision the slots stand at
	Slots  []slot   `json:"s"`
}

// maxConns bounds the connection ids a record keeps.
const maxConns = 4

// slot is one room of a session, at a fixed index for the offsets.
//
// Offset and Epoch, which the record keeps, are where the client started
// in the room (Told): a client that received no event of this connection
// has at least that. sent is the position of the last event queued, which
// the offsets carry: a client that received the event has that.
type slot struct {
	Room     string `json:"r,omitempty"` // "" once left
	ByClient bool   `json:"b,omitempty"` // the client joined it itself
	Auto     bool   `json:"a,omitempty"` // an automatic room (it was told a position, never joined)
	Offset   uint64 `json:"o,omitempty"`
	Epoch    string `json:"e,omitempty"`
	Rev      uint64 `json:"v,omitempty"` // the membership revision at which the slot got its room

	sent protocol.Position
}

// recordVersion is the record's format; a record of another is not
// resumed.
const recordVersion = 2

// tracked is the socket of a namespace with recovery: it keeps the
// session's rooms and positions and puts them in every event it sends
// (bridge.Tracker). Its fields are guarded by the socket's mu, so that an
// event's offset and its place in the queue agree.
type tracked struct {
	*socket
	rc     *Recovery
	resume *bridge.Resume // the session a CONNECT asked to resume, nil for none
	taken  taken          // the record of that session, taken from the store

	// Guarded by socket.mu.
	pid   string   // the session's private id
	ver   uint64   // the version this connection writes the record at
	user  string   // the identity of the session
	tnt   string   //
	conns []string // the record's Conns
	gen   uint64
	rev   uint64 // the membership revision: one more at every slot given a room, and at every leave
	slots []slot
	live  bool // Established: the record is saved at every change
	gone  bool // the record was deleted, or taken by a newer connection: nothing is saved any more
	dirty bool // the last save failed: the refresh saves again

	saveMu sync.Mutex // serialises the writes of the record, newest last
}

// taken is a record taken from the store for a resume.
type taken struct {
	pid string
	ver uint64
	raw []byte
}

var _ bridge.Tracker = (*tracked)(nil)

// newGen returns the first offset generation of a connection: random, so
// that an offset of a previous connection of the session is told apart.
func newGen() uint64 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// newPID returns a private session id: 128 random bits.
func newPID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Send implements bridge.Sink.
func (t *tracked) Send(class wire.Class, frames ...wire.Frame) wire.Result {
	return t.send(nil, class, "", protocol.Position{}, frames)
}

// SendBatch implements bridge.Sink.
func (t *tracked) SendBatch(b *wire.Batch, class wire.Class, frames ...wire.Frame) wire.Result {
	return t.send(b, class, "", protocol.Position{}, frames)
}

// SendAt implements bridge.Tracker.
func (t *tracked) SendAt(b *wire.Batch, room string, pos protocol.Position, frames ...wire.Frame) wire.Result {
	return t.send(b, wire.Broadcast, room, pos, frames)
}

// send queues a unit: the CONNECT with the session's pid in place of the
// welcome, every event with the offset of the positions the client will
// have once it is received.
func (t *tracked) send(b *wire.Batch, class wire.Class, room string, pos protocol.Position, frames []wire.Frame) wire.Result {
	if len(frames) == 0 {
		return wire.Queued
	}
	k := t.socket
	k.mu.Lock()
	defer k.mu.Unlock()
	var at *slot
	switch {
	case class == wire.Open:
		frames = t.withPID(frames)
	case isEvent(frames[0]):
		if room != "" {
			// A room never told has no slot, and no start to resume
			// from: its events carry the offset without it.
			at = t.slotLocked(room, false)
		}
		frames = t.withOffsetLocked(frames, at, pos)
	}
	r := k.queueLocked(b, class, frames)
	if r == wire.Queued && at != nil {
		at.sent = later(at.sent, pos)
	}
	return r
}

// isEvent reports whether the first frame of a unit is an EVENT or a
// BINARY_EVENT packet, as the namespace's codec writes them (an Engine.IO
// message: "42...", "45...").
func isEvent(f wire.Frame) bool {
	p := f.Payload
	return f.Op == wire.OpText && !f.Deflated && len(p) > 3 && p[0] == '0'+byte(eio.Message) &&
		(p[1] == '0'+byte(sio.Event) || p[1] == '0'+byte(sio.BinaryEvent)) && p[len(p)-1] == ']'
}

// withOffsetLocked returns a copy of an event's unit whose packet has the
// offset (appendOffsetLocked) as its last argument, written in one allocation;
// the frames given are shared with other recipients.
func (t *tracked) withOffsetLocked(frames []wire.Frame, at *slot, pos protocol.Position) []wire.Frame {
	out := make([]wire.Frame, len(frames))
	copy(out, frames)
	p := frames[0].Payload
	n := len(p) + 32 // the generation, the revision, quotes and comma
	for i := range t.slots {
		n += 3*13 + len(t.slots[i].sent.Epoch) // slot, offset and separators; a new epoch at most as long as the last
	}
	if at != nil {
		n += len(pos.Epoch)
	}
	text := make([]byte, 0, n)
	text = append(text, p[:len(p)-1]...)
	if p[len(p)-2] != '[' {
		text = append(text, ',')
	}
	text = append(t.appendOffsetLocked(append(text, '"'), at, pos), '"', ']')
	out[0].Payload = text
	return out
}

// withPID adds the session's pid to the CONNECT the codec made of the
// welcome ({"sid":...}); the pid is base64url, which needs no escaping.
func (t *tracked) withPID(frames []wire.Frame) []wire.Frame {
	p := frames[0].Payload
	if len(p) == 0 || p[len(p)-1] != '}' {
		return frames
	}
	text := make([]byte, 0, len(p)+len(t.pid)+9)
	text = append(append(text, p[:len(p)-1]...), `,"pid":"`...)
	text = append(append(text, t.pid...), `"}`...)
	return []wire.Frame{{Op: wire.OpText, Payload: text}}
}

// later returns pos when it is after cur: later in the same epoch, or of
// a new epoch.
func later(cur, pos protocol.Position) protocol.Position {
	if pos.Epoch == "" || (pos.Epoch == cur.Epoch && pos.Offset <= cur.Offset) {
		return cur
	}
	return pos
}

// told moves where the client started in the room, and what it was sent.
func (s *slot) told(pos protocol.Position) {
	start := later(protocol.Position{Offset: s.Offset, Epoch: s.Epoch}, pos)
	s.Offset, s.Epoch = start.Offset, start.Epoch
	s.sent = later(s.sent, pos)
}

// slotLocked returns the slot of a room, making one when asked.
func (t *tracked) slotLocked(room string, create bool) *slot {
	for i := range t.slots {
		if t.slots[i].Room == room {
			return &t.slots[i]
		}
	}
	if !create {
		return nil
	}
	t.rev++
	for i := range t.slots {
		if t.slots[i].Room == "" {
			t.slots[i] = slot{Room: room, Auto: true, Rev: t.rev}
			return &t.slots[i]
		}
	}
	t.slots = append(t.slots, slot{Room: room, Auto: true, Rev: t.rev})
	return &t.slots[len(t.slots)-1]
}

// An offset is the positions a client has of its session's rooms with
// history, as it will stand once it received the event that carries it:
//
//	g<gen>-<rev>(.<slot>-<offset>-<epoch>)*
//
// numbers in base 36, slots by their index in the session's record. gen
// is drawn at random for every connection, so an offset of a previous
// connection (the client keeps the last one across connections) is told
// apart and the record's start positions used. rev is the membership
// revision: an offset newer than the record means the record missed a
// join or a leave (its save failed), and the session cannot be resumed;
// an older one does not vouch for a slot that got its room since. A slot whose epoch is not
// made of letters, digits and '_' is left out.
func (t *tracked) appendOffsetLocked(b []byte, at *slot, pos protocol.Position) []byte {
	b = strconv.AppendUint(append(b, 'g'), t.gen, 36)
	b = strconv.AppendUint(append(b, '-'), t.rev, 36)
	for i := range t.slots {
		s := &t.slots[i]
		p := s.sent
		if s == at {
			p = later(p, pos)
		}
		if s.Room == "" || p.Epoch == "" || !plainEpoch(p.Epoch) {
			continue
		}
		b = strconv.AppendUint(append(b, '.'), uint64(i), 36)
		b = strconv.AppendUint(append(b, '-'), p.Offset, 36)
		b = append(append(b, '-'), p.Epoch...)
	}
	return b
}

func plainEpoch(e string) bool {
	if len(e) > adapter.MaxEpochLen {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_') {
			return false
		}
	}
	return true
}

// maxOffset bounds the offset a client may send.
const maxOffset = 64 << 10

// offset is a client's offset, read.
type offset struct {
	other bool // of another generation: a previous connection's
	rev   uint64
	pos   map[int]protocol.Position // by slot
}

// parseOffset reads an offset against a record of generation gen with
// nslots slots. ok is false for anything that is not an offset (a string
// an application sent as an event's last argument), which no resume can
// trust.
func parseOffset(s string, gen uint64, nslots int) (offset, bool) {
	if len(s) > maxOffset || !strings.HasPrefix(s, "g") {
		return offset{}, false
	}
	parts := strings.Split(s[1:], ".")
	gs, rs, found := strings.Cut(parts[0], "-")
	g, err1 := strconv.ParseUint(gs, 36, 64)
	rev, err2 := strconv.ParseUint(rs, 36, 64)
	if !found || err1 != nil || err2 != nil {
		return offset{}, false
	}
	if g != gen {
		return offset{other: true}, true
	}
	out := make(map[int]protocol.Position, len(parts)-1)
	for _, p := range parts[1:] {
		fields := strings.SplitN(p, "-", 3)
		if len(fields) != 3 {
			return offset{}, false
		}
		i, err1 := strconv.ParseUint(fields[0], 36, 31)
		off, err2 := strconv.ParseUint(fields[1], 36, 64)
		if err1 != nil || err2 != nil || int(i) >= nslots || !plainEpoch(fields[2]) || fields[2] == "" {
			return offset{}, false
		}
		out[int(i)] = protocol.Position{Offset: off, Epoch: fields[2]}
	}
	return offset{rev: rev, pos: out}, true
}

// Told implements bridge.Tracker: where the client starts in a room.
// The hub calls it before Joined or Established, which save the record.
//
// A room it had no slot for gets one; once the record lives, it is saved
// at once (an automatic room added by a token refresh), so that the
// revision the offsets carry never runs ahead of the record for long.
func (t *tracked) Told(room string, pos protocol.Position) {
	k := t.socket
	k.mu.Lock()
	s := t.slotLocked(room, false)
	created := s == nil
	if created {
		s = t.slotLocked(room, true)
	}
	s.told(pos)
	save := created && t.live
	k.mu.Unlock()
	if save {
		t.save(t.liveTTL())
	}
}

// Joined implements bridge.Tracker: the record is saved before the join
// is answered.
func (t *tracked) Joined(room string, byClient bool) {
	k := t.socket
	k.mu.Lock()
	s := t.slotLocked(room, true)
	s.Auto, s.ByClient = false, s.ByClient || byClient
	live := t.live
	k.mu.Unlock()
	if live {
		t.save(t.liveTTL())
	}
}

// Left implements bridge.Tracker. The slot is emptied, not removed: the
// offsets name slots by index. A later room may take it; an offset of the
// room that left then names a position of another stream, which no
// history matches, and the resume does not recover.
func (t *tracked) Left(room string) {
	k := t.socket
	k.mu.Lock()
	s := t.slotLocked(room, false)
	if s == nil {
		k.mu.Unlock()
		return
	}
	*s = slot{}
	t.rev++
	live := t.live
	k.mu.Unlock()
	if live {
		t.save(t.liveTTL())
	}
}

// Established implements bridge.Tracker: the record of the session is
// saved before the welcome — from then on a crash of this node loses
// nothing — and the socket is registered for the refreshes of its TTL.
// A resume that did not recover starts a new session (a new pid), so that
// socket.io-client reports socket.recovered false.
func (t *tracked) Established(e bridge.Established) {
	k := t.socket
	k.mu.Lock()
	if k.done { // the connection ended already
		k.mu.Unlock()
		return
	}
	t.user, t.tnt, t.conns = e.UserID, e.TenantID, []string{e.ConnID}
	if r := t.resume; r != nil && (r.UserID != e.UserID || r.TenantID != e.TenantID) {
		// Someone else's session: it stays its owner's.
		go t.sess.srv.restore(t.taken)
	}
	if e.Recovered && t.resume != nil {
		t.pid, t.ver = t.taken.pid, t.taken.ver+1
		t.conns = append(t.conns, t.resume.PrevIDs[:min(len(t.resume.PrevIDs), maxConns-1)]...)
	}
	t.live = true
	t.sess.srv.recov.add(t)
	k.mu.Unlock()
	t.save(t.liveTTL())
}

// Lost implements bridge.Tracker: a gap the hub could not fill ends the
// session (1013), so that socket.io-client reconnects and recovers, or
// learns that it cannot.
func (t *tracked) Lost(room string) {
	t.sess.srv.log.Info("socketio_recover", slog.String("namespace", t.nsp.name), slog.String("room", room))
	t.sess.eng.Close(wire.StatusCode(wsproto.CloseTryAgainLater))
}

func (t *tracked) liveTTL() time.Duration {
	return t.rc.liveTTL()
}

// snapshot encodes the record as it stands.
func (t *tracked) snapshot() (b []byte, pid string, ver uint64, ok bool) {
	k := t.socket
	k.mu.Lock()
	defer k.mu.Unlock()
	if t.gone {
		return nil, "", 0, false
	}
	rec := record{V: recordVersion, User: t.user, Tenant: t.tnt, Nsp: t.nsp.name, Conns: t.conns, Gen: t.gen, Rev: t.rev, Slots: t.slots}
	b, err := json.Marshal(rec)
	return b, t.pid, t.ver, err == nil
}

// save writes the record, to live for ttl. When a newer connection of the
// session took it, this one stops writing. When it cannot be written, the
// record is deleted — a stale one would resume the session without a
// room joined since — and the refresh tries again.
func (t *tracked) save(ttl time.Duration) {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	b, pid, ver, ok := t.snapshot()
	if !ok {
		return
	}
	var err error
	if len(b) > adapter.MaxSessionRecord {
		err = fmt.Errorf("record of %d bytes is over %d", len(b), adapter.MaxSessionRecord)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), t.rc.Timeout)
		err = t.rc.Store.Save(ctx, pid, ver, b, ttl)
		cancel()
	}
	k := t.socket
	switch {
	case err == nil:
		k.mu.Lock()
		t.dirty = false
		k.mu.Unlock()
		return
	case errors.Is(err, adapter.ErrStaleSession):
		t.superseded()
		return
	}
	t.sess.srv.log.Warn("socketio_session_not_saved", slog.String("namespace", t.nsp.name), slog.String("error", err.Error()))
	ctx, cancel := context.WithTimeout(context.Background(), t.rc.Timeout)
	derr := t.rc.Store.Delete(ctx, pid, ver, t.liveTTL())
	cancel()
	k.mu.Lock()
	t.dirty = true
	if derr == nil {
		t.ver = ver + 1 // past the tombstone
	}
	k.mu.Unlock()
	if errors.Is(derr, adapter.ErrStaleSession) {
		t.superseded()
	}
}

// superseded stops a socket whose session was taken by a newer
// connection (a resume while this one still looked alive) from writing it.
func (t *tracked) superseded() {
	k := t.socket
	k.mu.Lock()
	t.gone = true
	t.sess.srv.recov.remove(t)
	k.mu.Unlock()
	t.sess.srv.log.Info("socketio_session_superseded", slog.String("namespace", t.nsp.name))
}

// ended keeps the record for MaxDisconnectionDuration after a connection
// that may come back, and deletes it after one that may not (the client
// left the namespace, or the server closed it for good).
func (t *tracked) ended(final bool) {
	k := t.socket
	k.mu.Lock()
	t.sess.srv.recov.remove(t)
	live := t.live && !t.gone
	if final {
		t.gone = true
	}
	pid, ver := t.pid, t.ver
	k.mu.Unlock()
	if !live {
		return
	}
	if !final {
		t.save(t.rc.MaxDisconnectionDuration)
		return
	}
	// Under saveMu: a save that snapshotted before gone was set is written
	// before the delete, not after it.
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), t.rc.Timeout)
	defer cancel()
	_ = t.rc.Store.Delete(ctx, pid, ver, t.rc.MaxDisconnectionDuration)
}

// resumeOf takes the record of the session a CONNECT asks to resume (once:
// the store leaves a tombstone that fences the session's older
// connections) and reads it with the client's offset. nil when there is
// none to resume (no pid, no record, another namespace). A refused CONNECT
// puts the record back (restore).
func (srv *Server) resumeOf(nsp string, auth json.RawMessage) (*bridge.Resume, taken) {
	rc := srv.opts.Recovery
	var a struct {
		PID    string `json:"pid"`
		Offset string `json:"offset"`
	}
	if rc == nil || len(auth) == 0 || json.Unmarshal(auth, &a) != nil || a.PID == "" || len(a.PID) > adapter.MaxSessionID {
		return nil, taken{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), rc.Timeout)
	defer cancel()
	b, ver, err := rc.Store.Take(ctx, a.PID, rc.liveTTL())
	if err != nil {
		if !errors.Is(err, adapter.ErrNoSession) {
			srv.log.Warn("socketio_session_unavailable", slog.String("namespace", nsp), slog.String("error", err.Error()))
		}
		return nil, taken{}
	}
	tk := taken{pid: a.PID, ver: ver, raw: b}
	var rec record
	if json.Unmarshal(b, &rec) != nil || rec.V != recordVersion || rec.Nsp != nsp {
		return nil, tk
	}
	off, ok := parseOffset(a.Offset, rec.Gen, len(rec.Slots))
	switch {
	case a.Offset != "" && !ok:
		// Not an offset of ours: the client's last event came from the
		// application, and what it has of the rooms is unknown.
		srv.log.Info("socketio_offset_unknown", slog.String("namespace", nsp))
		rec.Slots = unknownPositions(rec.Slots)
	case !off.other && off.rev > rec.Rev:
		// The client saw a membership the record missed (a save failed).
		srv.log.Warn("socketio_record_behind", slog.String("namespace", nsp))
		rec.Slots = unknownPositions(rec.Slots)
	}
	offsets := make(map[int]protocol.Position, len(off.pos))
	for i, p := range off.pos {
		if rec.Slots[i].Rev <= off.rev {
			offsets[i] = p // the slot had its room when the offset was made
		}
	}
	r := &bridge.Resume{PrevIDs: rec.Conns, UserID: rec.User, TenantID: rec.Tenant}
	for i, s := range rec.Slots {
		if s.Room == "" {
			continue
		}
		rr := bridge.ResumeRoom{Room: s.Room, ByClient: s.ByClient, Auto: s.Auto}
		start := protocol.Position{Offset: s.Offset, Epoch: s.Epoch}
		if pos, ok := since(start, offsets, i); ok {
			rr.Since = &pos
		}
		r.Rooms = append(r.Rooms, rr)
	}
	return r, tk
}

// since is where a resume reads a room from: the client's offset, never
// before where the client started in the room (an offset is the client's
// word, and reading before the start would hand it events from before it
// joined); the start when the offset names no position of the room. A
// room whose start is unknown cannot be resumed.
func since(start protocol.Position, offsets map[int]protocol.Position, slot int) (protocol.Position, bool) {
	if start.Epoch == "" || !plainEpoch(start.Epoch) {
		// Unknown, or an epoch the offsets cannot carry: what the client
		// received of the room is unknown.
		return protocol.Position{}, false
	}
	pos, ok := offsets[slot]
	switch {
	case !ok:
		return start, true
	case pos.Epoch == start.Epoch:
		return protocol.Position{Offset: max(pos.Offset, start.Offset), Epoch: pos.Epoch}, true
	}
	// A stream that started again after the client joined: all of it is
	// after the start.
	return pos, true
}

// restore puts back the record a refused CONNECT took, for the client's
// next attempt.
func (srv *Server) restore(tk taken) {
	rc := srv.opts.Recovery
	if rc == nil || tk.raw == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rc.Timeout)
	defer cancel()
	_ = rc.Store.Save(ctx, tk.pid, tk.ver+1, tk.raw, rc.MaxDisconnectionDuration)
}

// withoutSession returns a CONNECT's auth payload without the pid and the
// offset of a recovering client: the pid is a credential, which handlers
// have no use for.
func withoutSession(payload json.RawMessage) json.RawMessage {
	var fields map[string]json.RawMessage
	if json.Unmarshal(payload, &fields) != nil {
		return payload
	}
	_, hasPID := fields["pid"]
	_, hasOffset := fields["offset"]
	if !hasPID && !hasOffset {
		return payload
	}
	delete(fields, "pid")
	delete(fields, "offset")
	out, err := json.Marshal(fields)
	if err != nil {
		return payload
	}
	return out
}

// unknownPositions returns slots without their positions: the rooms are
// joined again, and a room with history cannot recover.
func unknownPositions(slots []slot) []slot {
	for i := range slots {
		slots[i].Offset, slots[i].Epoch = 0, ""
	}
	return slots
}

// recoverables are the live sockets with recovery of a server, whose
// records a goroutine refreshes while there are any.
type recoverables struct {
	mu       sync.Mutex
	set      map[*tracked]struct{}
	running  bool
	rc       *Recovery
	resaving atomic.Bool // a round of saves again is running
}

func (r *recoverables) add(t *tracked) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set == nil {
		r.set = make(map[*tracked]struct{})
	}
	r.set[t] = struct{}{}
	if !r.running {
		r.running = true
		go r.refresh()
	}
}

func (r *recoverables) remove(t *tracked) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.set, t)
}

// refresh gives the live sockets' records their TTL back, every
// refreshEvery, in batches; it ends once there are none.
func (r *recoverables) refresh() {
	t := time.NewTicker(r.rc.refreshEvery())
	defer t.Stop()
	for range t.C {
		r.mu.Lock()
		if len(r.set) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		live := make([]*tracked, 0, len(r.set))
		for k := range r.set {
			live = append(live, k)
		}
		r.mu.Unlock()
		// The sockets' locks are taken after the set's is let go: add and
		// remove are called holding a socket's lock.
		ids := make([]string, 0, len(live))
		var redo []*tracked
		for _, k := range live {
			k.socket.mu.Lock()
			pid, dirty := k.pid, k.dirty
			k.socket.mu.Unlock()
			if dirty {
				redo = append(redo, k) // its last save failed
				continue
			}
			ids = append(ids, pid)
		}
		for len(ids) > 0 {
			n := min(len(ids), 1000)
			ctx, cancel := context.WithTimeout(context.Background(), r.rc.Timeout)
			_ = r.rc.Store.Touch(ctx, ids[:n], r.rc.liveTTL())
			cancel()
			ids = ids[n:]
		}
		if len(redo) > 0 && r.resaving.CompareAndSwap(false, true) {
			// Off the loop: a store that hangs on them must not delay the
			// refresh of the healthy records.
			go func() {
				defer r.resaving.Store(false)
				resave(redo)
			}()
		}
	}
}

// resave saves the records whose last save failed again, a few at a time,
// so that a store that fails does not hold the refresh for long.
func resave(redo []*tracked) {
	const inFlight = 8
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	for _, k := range redo {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			k.save(k.liveTTL())
		})
	}
	wg.Wait()
}
