package devstack

import (
	"os"
	"syscall"
)

// sysProcAttr puts each program in its own process group, so that Ctrl-C in
// the terminal reaches only the caller, which then stops the programs in
// order; and has the kernel end a program if the caller dies without
// stopping it (Pdeathsig), so that no server is left holding its port.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
