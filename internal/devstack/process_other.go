//go:build !linux

package devstack

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// terminate asks p to stop; where there is no SIGTERM (Windows) the caller
// falls back to killing it.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
