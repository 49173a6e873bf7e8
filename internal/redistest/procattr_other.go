//go:build !linux

package redistest

import "syscall"

// procAttr puts redis in its own process group, so that a Ctrl-C on
// `go test` reaches it through Cleanup rather than directly.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
