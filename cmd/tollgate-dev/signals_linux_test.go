package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/devstack"
	"github.com/tollgate-dev/tollgate/internal/testbuf"
)

// TestStopsEverything runs the real tollgate-dev, as make run does, and
// ends it the ways a person or a tool would. Each time all three servers
// must be gone afterwards and their ports free: no orphan keeps serving.
func TestStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real programs; not in -short")
	}
	bin := buildPrograms(t)

	t.Run("Ctrl-C", func(t *testing.T) {
		dev := startDev(t, bin)
		// A terminal sends SIGINT to its whole foreground process group;
		// tollgate-dev leads its own here, as a shell job would.
		if err := syscall.Kill(-dev.cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		dev.wantCleanExit(t)
	})
	t.Run("SIGTERM", func(t *testing.T) {
		dev := startDev(t, bin)
		if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		dev.wantCleanExit(t)
	})
	t.Run("killed outright", func(t *testing.T) {
		// SIGKILL gives tollgate-dev no chance to stop anything: the kernel
		// sends the servers SIGTERM as their parent dies (Pdeathsig).
		dev := startDev(t, bin)
		if err := dev.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-dev.exited
		dev.wantServersGone(t)
	})
	t.Run("its parent killed", func(t *testing.T) {
		// go run ./cmd/tollgate-dev dies of a SIGTERM without passing it
		// on. A shell stands in for go run.
		dev := startDevUnder(t, bin, true)
		shell := dev.cmd.Process.Pid
		dev.pid = childOf(t, shell, "tollgate-dev")
		dev.children = dev.waitChildren(t)
		if err := syscall.Kill(shell, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-dev.exited
		waitGone(t, "tollgate-dev", dev.pid, time.Now().Add(30*time.Second))
		dev.wantServersGone(t)
	})
}

// buildPrograms builds tollgate-dev and the three servers once, so that
// each run below only starts them (PREBUILT_DIR).
func buildPrograms(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		devstack.ModulePath+"/cmd/tollgate-dev", devstack.ModulePath+"/cmd/devidp",
		devstack.ModulePath+"/cmd/exchange", devstack.ModulePath+"/cmd/todo-api")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// dev is one running tollgate-dev.
type dev struct {
	cmd      *exec.Cmd
	pid      int // tollgate-dev's own (cmd's, unless a shell started it)
	out      *testbuf.Buffer
	exited   chan struct{} // closed when cmd has exited
	err      error         // cmd's exit status, once exited is closed
	ports    []int
	children map[int]string // server pid -> name
}

func startDev(t *testing.T, bin string) *dev {
	t.Helper()
	d := startDevUnder(t, bin, false)
	d.pid = d.cmd.Process.Pid
	d.children = d.waitChildren(t)
	return d
}

// startDevUnder starts tollgate-dev on free ports, directly or with a
// shell in between, and waits for its banner.
func startDevUnder(t *testing.T, bin string, viaShell bool) *dev {
	t.Helper()
	ports, err := devstack.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-devidp-port=" + strconv.Itoa(ports[0]),
		"-exchange-port=" + strconv.Itoa(ports[1]),
		"-todo-api-port=" + strconv.Itoa(ports[2]),
		"-data-dir=" + t.TempDir(),
		"-prebuilt-dir=" + bin,
	}
	prog := filepath.Join(bin, "tollgate-dev")
	var cmd *exec.Cmd
	if viaShell {
		// Not exec: the shell stays tollgate-dev's parent. "wait" keeps the
		// shell itself alive until it is killed.
		cmd = exec.Command("/bin/sh", "-c", `"$0" "$@" & wait`, prog)
		cmd.Args = append(cmd.Args, args...)
	} else {
		cmd = exec.Command(prog, args...)
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	d := &dev{cmd: cmd, out: &testbuf.Buffer{}, exited: make(chan struct{}), ports: ports}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// An orphan would hold the output pipe open forever; Wait must still
	// return when cmd itself exits, so that the test can report it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		// Whatever happened, leave nothing behind: the group is the shell
		// or tollgate-dev; the servers are found by their parent.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for pid := range d.children {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		<-d.exited
		if t.Failed() {
			t.Logf("tollgate-dev's output:\n%s", d.out.String())
		}
	})

	deadline := time.After(3 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(d.out.String(), "Press Ctrl-C to stop.") {
		select {
		case <-d.exited:
			t.Fatalf("tollgate-dev exited before its banner: %v\n%s", d.err, d.out.String())
		case <-deadline:
			t.Fatalf("no banner after 3 minutes:\n%s", d.out.String())
		case <-tick.C:
		}
	}
	return d
}

// waitChildren returns the three servers tollgate-dev started.
func (d *dev) waitChildren(t *testing.T) map[int]string {
	t.Helper()
	children := map[int]string{}
	for pid, name := range processes(t) {
		if name.ppid == d.pid {
			children[pid] = name.comm
		}
	}
	var names []string
	for _, n := range children {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"devidp", "exchange", "todo-api"}) {
		t.Fatalf("tollgate-dev (pid %d) runs %v; want devidp, exchange and todo-api", d.pid, children)
	}
	return children
}

func (d *dev) wantCleanExit(t *testing.T) {
	t.Helper()
	select {
	case <-d.exited:
	case <-time.After(time.Minute):
		t.Fatalf("tollgate-dev still runs a minute after the signal")
	}
	if d.err != nil {
		t.Errorf("tollgate-dev exited with %v; want 0", d.err)
	}
	if !strings.Contains(d.out.String(), "tollgate-dev: stopped") {
		t.Errorf("tollgate-dev did not say it stopped")
	}
	// tollgate-dev waits for the servers before it exits: they must be
	// gone already, not merely on their way.
	for pid, name := range d.children {
		if alive(pid) {
			t.Errorf("%s (pid %d) outlived tollgate-dev", name, pid)
		}
	}
	d.wantServersGone(t)
}

// wantServersGone waits until no server process is left and each port is
// free again.
func (d *dev) wantServersGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for pid, name := range d.children {
		waitGone(t, name, pid, deadline)
	}
	// A port can be busy for a moment after its server is gone: another
	// test running beside this one may hold it as the ephemeral source
	// port of a connection. A server left listening holds it until the
	// deadline.
	for _, port := range d.ports {
		for {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err == nil {
				ln.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("port %d is still taken: %v", port, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// waitGone waits until pid has ended, or fails at deadline.
func waitGone(t *testing.T, name string, pid int, deadline time.Time) {
	t.Helper()
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) still runs: an orphan", name, pid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a running process; a zombie has ended.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, ok := bytes.Cut(stat, []byte(") "))
	return ok && len(rest) > 0 && rest[0] != 'Z' && rest[0] != 'X'
}

type procInfo struct {
	ppid int
	comm string
}

// processes lists the processes in /proc with their parent and name.
func processes(t *testing.T) map[int]procInfo {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	procs := map[int]procInfo{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		open, close := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || close < open {
			continue
		}
		fields := strings.Fields(string(stat[close+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		procs[pid] = procInfo{ppid: ppid, comm: string(stat[open+1 : close])}
	}
	return procs
}

// childOf waits for the child of parent named comm and returns its pid.
func childOf(t *testing.T, parent int, comm string) int {
	t.Helper()
	for pid, p := range processes(t) {
		if p.ppid == parent && p.comm == comm {
			return pid
		}
	}
	t.Fatalf("process %d has no child %s", parent, comm)
	return 0
}
