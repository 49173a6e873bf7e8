package socketio

import (
	"encoding/json"
	"fmt"

	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// inbound maps an EVENT onto what the hub handles: the join and leave
// events onto KindJoin and KindLeave with the room named by the first
// argument, any other event onto KindEvent with its data as Options.Mode
// says. The ack id and the attachments go along. An error is a message
// the hub answers with INVALID_MESSAGE (the Inbound still has the id).
func (srv *Server) inbound(p *sio.Packet) (protocol.Inbound, error) {
	in := protocol.Inbound{Kind: protocol.KindEvent, ID: p.ID, HasID: p.HasID, Event: p.Event, Binary: p.Attachments}
	if !p.NumericEvent {
		switch p.Event {
		case srv.opts.JoinEvent:
			return roomRequest(in, protocol.KindJoin, p)
		case srv.opts.LeaveEvent:
			return roomRequest(in, protocol.KindLeave, p)
		}
	}
	in.Data = srv.data(p)
	if srv.opts.Mode == NestJS && !p.HasID {
		// Nest emits a returned {event, data} whether or not the client
		// asked for an ack; the hub answers only messages with an id.
		in.ID, in.HasID = unaskedAck, true
	}
	return in, nil
}

// unaskedAck is the id of an event whose client asked for no ack, in
// NestJS mode: above any Socket.IO ack id (2^53-1), so that the codec
// tells its answers apart, emitting a returned {event, data} and dropping
// the rest.
const unaskedAck = 1 << 63

// roomRequest is a join or leave: its first argument is the room's name.
func roomRequest(in protocol.Inbound, kind protocol.Kind, p *sio.Packet) (protocol.Inbound, error) {
	in.Kind, in.Event = kind, ""
	if len(p.Args) == 0 {
		return in, fmt.Errorf("%w: %s needs the room name as its argument", protocol.ErrInvalid, kind)
	}
	if err := json.Unmarshal(p.Args[0], &in.Room); err != nil {
		return in, fmt.Errorf("%w: the room name of a %s must be a string", protocol.ErrInvalid, kind)
	}
	if in.Room == "" {
		return in, fmt.Errorf("%w: empty room name", protocol.ErrInvalid)
	}
	return in, nil
}

// data is an event's data for the hub, by mode: the first argument
// (FirstArgument; NestJS with one argument), the array of all (NestJS with
// several; AllArguments, binary placeholders kept), nothing without an
// argument (but AllArguments' empty array). Outside AllArguments the
// attachments stand in their arguments as base64 strings, which is how
// encoding/json fills a []byte field of the handler's input.
func (srv *Server) data(p *sio.Packet) json.RawMessage {
	switch {
	case srv.opts.Mode == AllArguments:
		return joinArgs(p.Args, nil)
	case len(p.Args) == 0:
		return nil
	case len(p.Args) == 1 || srv.opts.Mode == FirstArgument:
		return p.ArgJSON(0)
	}
	return joinArgs(p.Args, p.ArgJSON)
}

// joinArgs writes args as one JSON array, each through resolve when set.
func joinArgs(args []json.RawMessage, resolve func(int) json.RawMessage) json.RawMessage {
	out := make([]byte, 0, argsLen(args)+2)
	out = append(out, '[')
	for i, a := range args {
		if i > 0 {
			out = append(out, ',')
		}
		if resolve != nil {
			a = resolve(i)
		}
		out = append(out, a...)
	}
	return append(out, ']')
}
