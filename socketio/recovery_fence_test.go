package socketio

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
)

// The regressions a review of connection state recovery found, each a
// scenario that gave duplicates, a hole or a lost session.

// Leaving many rooms keeps the slots' numbering: an offset the client
// holds still names the same rooms, and nothing it had comes again.
func TestRecoveryAfterLeavingRooms(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.nodes[0].dial(cl.nodes[0].header())
	pid := a.connectRecovering(`"token":"alice"`, clientSession{})
	for i := range 16 {
		a.joinRoom(fmt.Sprintf("topic:r%d", i))
	}
	cl.publish(0, "topic:r15", 1, 2)
	s := a.expectNews(clientSession{pid: pid}, 1, 2)
	for i := range 9 {
		a.send(fmt.Sprintf(`421["leave","topic:r%d"]`, i))
		a.expect("431[*")
	}
	a.c.CloseNow()
	cl.publish(1, "topic:r15", 3, 3)
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatal("not recovered")
	}
	b.expectNews(s, 3)
}

// A connection the server still holds (half-open) when its client resumes
// elsewhere cannot overwrite the record of the connection that replaced
// it when it finally ends: the next resume is exact.
func TestRecoveryFencesAReplacedConnection(t *testing.T) {
	cl := newCluster(t, nil)
	a, s := cl.inNews(2)
	pid := s.pid
	// The client's transport drops; the server has not noticed A yet.
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatal("not recovered")
	}
	cl.publish(1, "topic:news", 3, 4)
	s = b.expectNews(s, 3, 4)
	b.c.CloseNow() // drops again
	a.c.CloseNow() // and the server notices A at last: its save is refused
	testutil.Eventually(t, wait, "A's save refused", func() bool { return strings.Contains(cl.nodes[0].logs.String(), "socketio_session_superseded") })
	cl.publish(1, "topic:news", 5, 5)
	c := cl.nodes[0].dial(cl.nodes[0].header())
	if got := c.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatal("not recovered")
	}
	c.expectNews(s, 5)
}

// A CONNECT with the pid that is refused (a forged token) leaves the
// session to the client's next attempt.
func TestRecoverySurvivesARefusedConnect(t *testing.T) {
	cl := newCluster(t, nil)
	a, s := cl.inNews(1)
	pid := s.pid
	a.c.CloseNow()
	b := cl.nodes[1].dial(cl.nodes[1].header())
	b.send(fmt.Sprintf(`40{"token":"forged","pid":%q,"offset":%q}`, s.pid, s.offset))
	b.expect("44*")
	cl.publish(1, "topic:news", 2, 2)
	c := cl.nodes[1].dial(cl.nodes[1].header())
	if got := c.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatal("a refused CONNECT destroyed the session")
	}
	c.expectNews(s, 2)
}

// An offset is the client's word: one edited to before the room was
// joined reads from where the client started, not before.
func TestRecoveryDoesNotReadBeforeTheJoin(t *testing.T) {
	cl := newCluster(t, nil)
	cl.publish(0, "topic:secret", 1, 2) // before the join
	a := cl.nodes[0].dial(cl.nodes[0].header())
	pid := a.connectRecovering(`"token":"alice"`, clientSession{})
	a.send(`421["enter",{"room":"topic:secret"}]`)
	a.expect("431[]")
	cl.publish(0, "topic:secret", 3, 3)
	s := a.expectNews(clientSession{pid: pid}, 3)
	s.offset = strings.Replace(s.offset, "-3-", "-0-", 1)
	a.c.CloseNow()
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatal("not recovered")
	}
	b.expectNews(s, 3) // from the start (2), not from 0
}

// An event its publisher sent to everyone but the session's first
// connection stays out after two resumes, the second from a connection
// the client received nothing from.
func TestRecoveryKeepsExclusionsAcrossResumes(t *testing.T) {
	cl := newCluster(t, nil)
	a, s := cl.inNews(1)
	pid := s.pid
	aid := a.sid
	a.c.CloseNow()
	if err := cl.nodes[1].main.Broadcast(t.Context(), "topic:news", "news", map[string]int{"n": 2}, hub.Except(aid)); err != nil {
		t.Fatal(err)
	}
	cl.publish(1, "topic:news", 3, 3)
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatal("not recovered")
	}
	b.c.CloseNow() // before the client read anything of B
	c := cl.nodes[0].dial(cl.nodes[0].header())
	if got := c.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatal("not recovered")
	}
	c.expectNews(s, 3)
}

// A join and a leave the record missed (the store was down when they were
// saved) are told by the offsets' membership revision: the room that took
// the slot of the room left is not silently dropped, and the resume does
// not recover.
func TestRecoveryWithARecordThatMissedAJoin(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.nodes[0].dial(cl.nodes[0].header())
	pid := a.connectRecovering(`"token":"alice"`, clientSession{})
	a.joinRoom("topic:b")
	cl.spy.down.Store(true)
	a.send(`421["leave","topic:b"]`)
	a.expect("431[*")
	a.joinRoom("topic:r") // takes topic:b's slot; the record still has topic:b
	cl.publish(0, "topic:r", 1, 1)
	s := a.expectNews(clientSession{pid: pid}, 1)
	a.c.CloseNow() // the store is still down for writes: the record stays as it was
	cl.publish(1, "topic:r", 2, 2)
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, s); got == pid {
		t.Fatal("recovered from a record that missed a join and a leave")
	}
}

// A leave the record missed: without the revision, the resume would join
// the room left again and replay what the client had of it.
func TestRecoveryWithARecordThatMissedALeave(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.nodes[0].dial(cl.nodes[0].header())
	pid := a.connectRecovering(`"token":"alice"`, clientSession{})
	a.joinRoom("topic:r")
	cl.publish(0, "topic:r", 1, 2)
	a.expectNews(clientSession{pid: pid}, 1, 2)
	cl.spy.down.Store(true)
	a.send(`421["leave","topic:r"]`)
	a.expect("431[*")
	cl.publish(0, "topic:r", 3, 3) // not for the client any more
	if err := cl.nodes[0].main.ToUser(t.Context(), "alice", "news", map[string]int{"n": 100}); err != nil {
		t.Fatal(err)
	}
	s := a.expectNews(clientSession{pid: pid}, 100) // its offset is after the leave
	a.c.CloseNow()
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, s); got == pid {
		t.Fatal("recovered from a record that missed a leave")
	}
}
