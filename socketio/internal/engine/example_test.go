package engine_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
	"github.com/wsgate/wsgate/socketio/internal/engine"
)

// upper answers every text message with its upper-case form.
type upper struct{ s *engine.Session }

func (u upper) Message(p eio.Packet) {
	if !p.Binary {
		// p.Data is only valid during the call: the frame gets a copy.
		_ = u.s.Send(wire.Frame{Op: wire.OpText, Payload: append([]byte("4"), strings.ToUpper(string(p.Data))...)})
	}
}

func (upper) Closed(engine.CloseInfo) {}

// A server whose sessions answer each message, reached over long-polling:
// the handshake, a POST with the client's packet, a GET with the answer.
func Example() {
	srv, err := engine.New(engine.Options{
		Open: func(s *engine.Session, r *http.Request) (engine.Receiver, error) {
			return upper{s}, nil
		},
		// Check sees every request, handshakes and the session's later
		// requests alike.
		Check: func(r *http.Request, handshake bool) error {
			if r.Header.Get("Origin") != "" && r.Header.Get("Origin") != "https://app.example" {
				return eio.CodeForbidden
			}
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	body := func(resp *http.Response, err error) string {
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	open := body(http.Get(hs.URL + "/engine.io/?EIO=4&transport=polling"))
	h, err := eio.ParseOpen([]byte(open[1:]))
	if err != nil {
		panic(err)
	}
	url := hs.URL + "/engine.io/?EIO=4&transport=polling&sid=" + h.SID
	fmt.Println(body(http.Post(url, "text/plain;charset=UTF-8", strings.NewReader("4hello"))))
	fmt.Println(body(http.Get(url)))
	// Output:
	// ok
	// 4HELLO
}
