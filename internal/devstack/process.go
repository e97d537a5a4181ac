package devstack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// passEnv lists the variables of our own environment a program inherits.
// Nothing else: a stray ISSUER or DATABASE_URL in the shell must not change
// the stack.
var passEnv = []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "GODEBUG", "GOTRACEBACK", "GORACE"}

// process is one running program.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *lineWriter
	done chan struct{} // closed when the program has exited
	err  error         // the exit status, set before done closes
}

func startProcess(name, path string, env []string, out *lockedWriter) (*process, error) {
	cmd := exec.Command(path)
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	lw := &lineWriter{prefix: fmt.Sprintf("%-8s | ", name), out: out}
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("devstack: starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, out: lw, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lw.flush()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM, waits up to timeout, then kills.
func (p *process) stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.exitError()
	default:
	}
	if err := terminate(p.cmd.Process); err != nil {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
		return p.exitError()
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("devstack: %s did not stop within %s of SIGTERM and was killed", p.name, timeout)
}

// exitError reports an exit other than a clean one. A program that a
// signal ended (say Ctrl-C reached it first) is not an error.
func (p *process) exitError() error {
	var ee *exec.ExitError
	if p.err == nil || (errors.As(p.err, &ee) && ee.ExitCode() == -1) {
		return nil
	}
	return fmt.Errorf("devstack: %s: %w", p.name, p.err)
}

// tail returns the program's last lines of output, indented.
func (p *process) tail() string { return p.out.tail() }

// lockedWriter serializes the lines of several programs.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) writeLine(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}

// lineWriter prefixes each line with the program's name, passes whole lines
// to out and keeps the last few for error messages.
type lineWriter struct {
	prefix string
	out    *lockedWriter

	mu    sync.Mutex
	buf   []byte
	lines []string
}

const (
	tailLines   = 30
	maxLineSize = 64 << 10
)

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxLineSize { // a runaway line: cut it
				w.emit(w.buf)
				w.buf = w.buf[:0]
			}
			return len(b), nil
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

// emit writes one line; w.mu is held.
func (w *lineWriter) emit(line []byte) {
	s := strings.TrimRight(string(line), "\r")
	w.out.writeLine([]byte(w.prefix + s + "\n"))
	w.lines = append(w.lines, s)
	if len(w.lines) > tailLines {
		w.lines = w.lines[len(w.lines)-tailLines:]
	}
}

func (w *lineWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, l := range w.lines {
		b.WriteString("\t" + w.prefix + l + "\n")
	}
	return b.String()
}
