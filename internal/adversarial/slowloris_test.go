package adversarial

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestSlowloris holds 200 handshakes open without ever finishing their
// headers, some sending nothing more, some a byte now and then to look
// alive. The server's ReadHeaderTimeout cuts every one of them, and a
// genuine client connects while they hang.
func TestSlowloris(t *testing.T) {
	const silent, dribbling = 180, 20
	srv := Start(t, Config{ReadHeaderTimeout: time.Second})
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, silent+dribbling)
	cut := make(chan time.Duration, silent+dribbling)
	for i := range silent + dribbling {
		c := srv.Raw(t)
		if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+srv.Addr+"\r\nUpgrade: websocket\r\n"); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if i >= silent {
				go dribble(c)
			}
			d, err := waitCut(c, start)
			if err != nil {
				errs <- err
				return
			}
			cut <- d
		})
	}
	// The server still serves while they hang.
	srv.Connect(t, Token(t, nil))
	wg.Wait()
	close(errs)
	close(cut)
	for err := range errs {
		t.Error(err)
	}
	var slowest time.Duration
	for d := range cut {
		slowest = max(slowest, d)
	}
	t.Logf("%d half-open handshakes, all cut by the server within %s of the first", silent+dribbling, slowest.Round(time.Millisecond))
}

// dribble writes one more header byte every 100ms until the write fails
// or Wait has passed.
func dribble(c net.Conn) {
	for range int(Wait / (100 * time.Millisecond)) {
		time.Sleep(100 * time.Millisecond) // the attack's own pace
		if _, err := c.Write([]byte("X")); err != nil {
			return
		}
	}
}

// waitCut reads until the server closes c, and returns when that was
// relative to start. A connection still open after Wait is an error.
func waitCut(c net.Conn, start time.Time) (time.Duration, error) {
	if err := c.SetReadDeadline(time.Now().Add(Wait)); err != nil {
		return 0, err
	}
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // a 408 or 400 before the close is fine
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 0, errors.New("a half-open handshake was still open after " + Wait.String())
		}
		return time.Since(start), nil
	}
}
