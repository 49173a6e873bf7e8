package eio_test

import (
	"fmt"
	"time"

	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// A long-polling POST body holds several packets; a GET answer is built the
// same way.
func ExampleDecodePayload() {
	packets, err := eio.DecodePayload(nil, []byte("4hello\x1e3\x1ebAQIDBA=="), eio.Limits{})
	if err != nil {
		fmt.Println("close the session:", err)
		return
	}
	for _, p := range packets {
		fmt.Println(p.Type, p.Binary, p.Data)
	}
	fmt.Printf("%q\n", eio.AppendPayload(nil, packets...))
	// Output:
	// message false [104 101 108 108 111]
	// pong false []
	// message true [1 2 3 4]
	// "4hello\x1e3\x1ebAQIDBA=="
}

func ExampleAppendOpen() {
	open := eio.AppendOpen(nil, eio.Handshake{
		SID:          "lv_VI97HAXpY6yYWAAAC",
		Upgrades:     []string{"websocket"},
		PingInterval: 25 * time.Second,
		PingTimeout:  20 * time.Second,
		MaxPayload:   1_000_000,
	})
	fmt.Println(string(open))
	// Output:
	// 0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}
}
