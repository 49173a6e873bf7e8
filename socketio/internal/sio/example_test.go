package sio_test

import (
	"encoding/json"
	"fmt"

	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// A binary event arrives as a text message and one binary message per
// attachment; the first argument decodes into a handler's input type.
func ExampleDecoder() {
	dec := sio.NewDecoder(sio.Limits{})
	frames := [][]byte{
		[]byte(`51-12["upload",{"name":"a.png","data":{"_placeholder":true,"num":0}}]`),
		{0x89, 0x50, 0x4e, 0x47},
	}
	var p sio.Packet
	var ok bool
	var err error
	for i, f := range frames {
		if i == 0 {
			p, ok, err = dec.DecodeText(f)
		} else {
			p, ok, err = dec.DecodeBinary(f)
		}
		if err != nil {
			fmt.Println("close the connection:", err)
			return
		}
	}
	var in struct {
		Name string `json:"name"`
		Data []byte `json:"data"`
	}
	if err := json.Unmarshal(p.ArgJSON(0), &in); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ok, p.Event, p.ID, in.Name, in.Data)
	// Output:
	// true upload 12 a.png [137 80 78 71]
}

// A broadcast is encoded once; every recipient gets the same frames.
func ExamplePacket_Encode() {
	p, err := sio.NewEvent("/chat", "message:new", map[string]any{"text": "hi", "thumb": []byte{1, 2}})
	if err != nil {
		fmt.Println(err)
		return
	}
	enc, err := p.Encode()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(enc.Text), enc.Attachments)
	// Output:
	// 451-/chat,["message:new",{"text":"hi","thumb":{"_placeholder":true,"num":0}}] [[1 2]]
}
