package redistest

import "syscall"

// procAttr puts redis in its own process group, so that a Ctrl-C on
// `go test` reaches it through Cleanup rather than directly, and asks the
// kernel to SIGKILL it if the test binary dies first (a -timeout panic
// skips Cleanup), so no server outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
