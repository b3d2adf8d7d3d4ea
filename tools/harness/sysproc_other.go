//go:build unix && !linux

package harness

import "syscall"

// sysProcAttr puts the child in a process group of its own, so one signal
// reaches everything it starts.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// childPids is not available without /proc; Stop relies on the RIE
// stopping its runtime on SIGTERM.
func childPids(int) []int { return nil }

// ownsListener cannot tell without /proc.
func ownsListener(int, int) (owned, known bool) { return false, false }
