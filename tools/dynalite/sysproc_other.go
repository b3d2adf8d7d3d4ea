//go:build unix && !linux

package dynalite

import "syscall"

// sysProcAttr puts Node in a process group of its own, so Close's signal
// reaches anything it starts. Without a parent-death signal, the script's
// exit on stdin's end stops it when the Go process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
