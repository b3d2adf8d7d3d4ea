package dynalite

import "syscall"

// sysProcAttr puts Node in a process group of its own, so Close's signal
// reaches anything it starts, and has the kernel stop it if the Go
// process dies without Close (go test's timeout, SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
