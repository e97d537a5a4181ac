package main

import "syscall"

// stopWithParent has the kernel send us SIGTERM when the process that
// started us ends. Under go run ./cmd/tollgate-dev a SIGTERM reaches go run,
// which dies without passing it on: without this we, and the three servers,
// would keep running and holding their ports. (The kernel watches the
// parent's thread, not its process; the go command does not end the thread
// that started us while we run.)
func stopWithParent() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
}
