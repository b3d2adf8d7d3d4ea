//go:build unix

package dynalite

import (
	"errors"
	"syscall"
)

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return errors.New("dynalite: bad pid")
	}
	return syscall.Kill(-pid, sig)
}
