package client

import "sync"

// dispatcher runs the application's callbacks one at a time and in order,
// on a goroutine that exists only while callbacks are queued: the read loop
// hands events over without waiting, so a slow callback never holds up acks,
// and an idle client costs no goroutine for it.
type dispatcher struct {
	mu      sync.Mutex // guards every field below
	queue   []callback
	events  int  // queued callbacks that count against max
	max     int  // Options.EventQueue
	running bool // a run goroutine exists
	discard bool // Close was called: queued events are skipped
}

type callback struct {
	fn    func()
	event bool
}

// event queues an event or error callback; false when max are already
// waiting (the caller treats the connection as a slow consumer).
func (d *dispatcher) event(fn func()) bool {
	return d.push(callback{fn: fn, event: true})
}

// notify queues a state callback; those are never refused, there are a
// handful per connection.
func (d *dispatcher) notify(fn func()) { d.push(callback{fn: fn}) }

func (d *dispatcher) push(cb callback) bool {
	d.mu.Lock()
	if cb.event {
		if d.discard {
			d.mu.Unlock()
			return true
		}
		if d.events >= d.max {
			d.mu.Unlock()
			return false
		}
		d.events++
	}
	d.queue = append(d.queue, cb)
	start := !d.running
	d.running = true
	d.mu.Unlock()
	if start {
		go d.run()
	}
	return true
}

// dropEvents skips events still queued and refuses new ones: after Close
// the application hears only the final state.
func (d *dispatcher) dropEvents() {
	d.mu.Lock()
	d.discard = true
	d.mu.Unlock()
}

func (d *dispatcher) run() {
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			d.running = false
			d.queue = nil
			d.mu.Unlock()
			return
		}
		cb := d.queue[0]
		d.queue[0] = callback{}
		d.queue = d.queue[1:]
		if cb.event {
			d.events--
		}
		skip := cb.event && d.discard
		d.mu.Unlock()
		if !skip {
			cb.fn()
		}
	}
}
