//go:build !unix

package wire

import "net"

// newSocketTransport: no non-blocking writes on this platform; every
// busy connection writes from a goroutine of its own.
func newSocketTransport(net.Conn) Transport { return nil }
