package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"
)

// Streams must notice that offsets went back within an epoch: a Redis
// restarted from a persistence file that missed its last writes (appendfsync
// everysec loses up to a second), or a failover to a replica that lagged,
// holds a topic's position as it was a moment ago, and would hand out again
// offsets clients already saw. A server process is told apart by its
// run_id, which changes on every start; the stream script keeps the run_id
// of the process that wrote the position beside it, and starts a new epoch
// when the process running the script is another.
//
// The script learns the run_id as an argument, so that a publish does not
// pay for INFO. An argument built before the command reaches a server
// cannot know which process will run it, though: after a restart, the first
// command on the new connection is exactly the one that must not carry the
// old run_id. So the node proves, with the command itself, which process
// runs it: the script it sends is a copy of its own, marked with the node's
// id and an incarnation number, loaded (EVAL) on one server process only.
// EVALSHA of that copy runs only on the process that loaded it, with the
// run_id that process reported when it did; any other process answers
// NOSCRIPT (Redis does not persist or replicate loaded scripts), and the
// node then loads a new copy with EVAL, passing no run_id, and the script
// asks INFO for it, once per node and server process.
//
// In a cluster each master is a process of its own: the node remembers per
// slot which copy runs there, and for a slot it has not used yet tries the
// copies it knows (only the master that loaded one runs it) before loading
// another.

// maxIncarnations bounds the copies a node remembers: the masters it talks
// to, and those it talked to before a restart while the slots still point
// to them.
const maxIncarnations = 64

// incarnation is one copy of the stream script, loaded on one server
// process, and that process's run_id.
type incarnation struct {
	sc  *script
	run string
}

// incarnations remembers the copies this node loaded, and which runs where.
type incarnations struct {
	base    string // the script's source
	node    string
	cluster bool
	gen     atomic.Uint64
	slots   []atomic.Pointer[incarnation] // by slot; one entry outside a cluster
	load    chan struct{}                 // capacity 1: one EVAL of a new copy at a time

	mu    sync.Mutex // guards known
	known []*incarnation
}

func newIncarnations(base, node string, cluster bool) *incarnations {
	n := 1
	if cluster {
		n = numSlots
	}
	return &incarnations{base: base, node: node, cluster: cluster,
		slots: make([]atomic.Pointer[incarnation], n), load: make(chan struct{}, 1)}
}

func (ic *incarnations) slot(s uint16) *atomic.Pointer[incarnation] {
	if !ic.cluster {
		return &ic.slots[0]
	}
	return &ic.slots[s]
}

// run executes the stream script for keys in slot, with the run_id of the
// process that runs it before args, and returns its reply, whose third
// value is that run_id.
func (ic *incarnations) run(ctx context.Context, c rueidis.Client, slot uint16, keys, args []string) ([]rueidis.RedisMessage, error) {
	if inc := ic.slot(slot).Load(); inc != nil {
		reply, loaded, err := ic.try(ctx, c, inc, keys, args)
		if loaded {
			return reply, err
		}
		ic.forget(inc)
	}
	for _, inc := range ic.candidates() {
		reply, loaded, err := ic.try(ctx, c, inc, keys, args)
		if loaded {
			if err == nil {
				ic.slot(slot).Store(inc)
			}
			return reply, err
		}
		if !ic.cluster {
			ic.forget(inc)
		}
	}
	return ic.loadNew(ctx, c, slot, keys, args)
}

// try runs inc's copy; loaded is false when the server does not have it.
func (ic *incarnations) try(ctx context.Context, c rueidis.Client, inc *incarnation, keys, args []string) ([]rueidis.RedisMessage, bool, error) {
	cmd := c.B().Evalsha().Sha1(inc.sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(inc.run).Arg(args...).Build()
	reply, err := c.Do(ctx, cmd).ToArray()
	if noScript(err) {
		return nil, false, nil
	}
	return reply, true, err
}

// loadNew loads a new copy with EVAL, which asks the server its run_id,
// and binds it to slot.
func (ic *incarnations) loadNew(ctx context.Context, c rueidis.Client, slot uint16, keys, args []string) ([]rueidis.RedisMessage, error) {
	select {
	case ic.load <- struct{}{}:
		defer func() { <-ic.load }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Another caller may have loaded one for this slot meanwhile.
	if inc := ic.slot(slot).Load(); inc != nil {
		if reply, loaded, err := ic.try(ctx, c, inc, keys, args); loaded {
			return reply, err
		}
		ic.forget(inc)
	}
	g := ic.gen.Add(1)
	src := ic.base + "\n-- node " + ic.node + " incarnation " + strconv.FormatUint(g, 10) + "\n"
	sum := sha1.Sum([]byte(src))
	sc := &script{src: src, sha: hex.EncodeToString(sum[:])}
	cmd := c.B().Eval().Script(src).Numkeys(int64(len(keys))).Key(keys...).Arg("").Arg(args...).Build()
	reply, err := c.Do(ctx, cmd).ToArray()
	if err != nil {
		return nil, err
	}
	if len(reply) < 3 {
		return nil, fmt.Errorf("redis: stream script returned %d values", len(reply))
	}
	run, err := reply[2].ToString()
	if err != nil || run == "" {
		return nil, fmt.Errorf("redis: stream script did not return the server's run_id: %v", err)
	}
	inc := &incarnation{sc: sc, run: run}
	ic.add(inc)
	ic.slot(slot).Store(inc)
	return reply, nil
}

// candidates returns the copies known, newest first.
func (ic *incarnations) candidates() []*incarnation {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	out := make([]*incarnation, len(ic.known))
	for i, inc := range ic.known {
		out[len(out)-1-i] = inc
	}
	return out
}

func (ic *incarnations) add(inc *incarnation) {
	ic.mu.Lock()
	var old *incarnation
	if len(ic.known) == maxIncarnations {
		old = ic.known[0]
		ic.known = ic.known[1:]
	}
	ic.known = append(ic.known, inc)
	ic.mu.Unlock()
	if old != nil {
		ic.unbind(old)
	}
}

// forget drops a copy whose server process is gone (or flushed its
// scripts), and every slot bound to it.
func (ic *incarnations) forget(inc *incarnation) {
	ic.mu.Lock()
	for i, k := range ic.known {
		if k == inc {
			ic.known = append(ic.known[:i:i], ic.known[i+1:]...)
			break
		}
	}
	ic.mu.Unlock()
	ic.unbind(inc)
}

func (ic *incarnations) unbind(inc *incarnation) {
	for i := range ic.slots {
		ic.slots[i].CompareAndSwap(inc, nil)
	}
}
