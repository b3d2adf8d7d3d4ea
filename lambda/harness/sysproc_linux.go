package harness

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts the child in a process group of its own (so one signal
// reaches everything it starts) and has the kernel send it SIGTERM if we
// die without cleaning up (go test's timeout panic, SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// childPids lists the direct children of pid, read from /proc.
func childPids(pid int) []int {
	var pids []int
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				pids = append(pids, c)
			}
		}
	}
	return pids
}
