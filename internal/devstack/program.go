package devstack

import (
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// Program is one program started on its own by StartProgram. Start runs
// one of each program; a test of a deployment with several instances of
// one (three exchanges behind a load balancer) starts them one by one with
// the same environment rules, output prefixing and clean-up.
type Program struct {
	p *process
}

// StartProgram runs binDir/name with env (KEY=VALUE; of our own
// environment only PATH, HOME and the like pass, as for Start) and writes
// its output to out, each line prefixed with label. It does not wait for
// the program to be ready. The program is in its own process group and
// ends when the caller dies; stop it with Stop.
func StartProgram(binDir, name, label string, env []string, out io.Writer) (*Program, error) {
	if out == nil {
		out = io.Discard
	}
	p, err := startProcess(label, filepath.Join(binDir, name), env, &lockedWriter{w: out})
	if err != nil {
		return nil, err
	}
	return &Program{p: p}, nil
}

// PID is the program's process ID.
func (p *Program) PID() int { return p.p.cmd.Process.Pid }

// Done is closed when the program has exited.
func (p *Program) Done() <-chan struct{} { return p.p.done }

// Tail returns the program's last lines of output, indented.
func (p *Program) Tail() string { return p.p.tail() }

// Stop sends SIGTERM, kills the program if it is still running after
// timeout, and reports a kill or an unclean exit. Calling it again after
// the program has ended returns its exit status.
func (p *Program) Stop(timeout time.Duration) error {
	if err := p.p.stop(timeout); err != nil {
		return fmt.Errorf("%w\n%s", err, p.p.tail())
	}
	return nil
}
