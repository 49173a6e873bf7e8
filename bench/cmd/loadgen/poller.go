package main

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// poller reads every client socket from one goroutine with a level-triggered
// epoll set: one epoll_wait for many ready sockets, then one read(2) each.
// Compared with a goroutine blocked in Read per connection, this halves the
// read system calls (no EAGAIN read before parking) and removes a goroutine
// wake-up per delivered message, which matters because the generator shares
// the machine's two cores with the server it measures.
type poller struct {
	epfd    int
	stopped atomic.Bool
	done    chan struct{}

	mu      sync.Mutex // guards clients
	clients map[int32]*client
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, done: make(chan struct{}), clients: map[int32]*client{}}
	go p.loop()
	return p, nil
}

func (p *poller) add(c *client) error {
	p.mu.Lock()
	p.clients[int32(c.fd)] = c
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.clients, int32(c.fd))
		p.mu.Unlock()
		return err
	}
	return nil
}

// stop ends the loop; call it after closing the clients.
func (p *poller) stop() {
	p.stopped.Store(true)
	<-p.done
	syscall.Close(p.epfd)
}

func (p *poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	for !p.stopped.Load() {
		n, err := syscall.EpollWait(p.epfd, events, 100)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			c := p.clients[ev.Fd]
			p.mu.Unlock()
			if c == nil || c.gone.Load() {
				continue
			}
			m, err := syscall.Read(c.fd, buf)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if err != nil || m == 0 || !c.consume(buf[:m]) {
				p.drop(c)
			}
		}
	}
}

// drop forgets a connection that ended and closes it.
func (p *poller) drop(c *client) {
	p.mu.Lock()
	delete(p.clients, int32(c.fd))
	p.mu.Unlock()
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	c.sink.closed.Add(1)
	// Closed before first is released, so that dial, woken by first,
	// sees that the connection is over.
	c.close()
	c.markFirst()
}
