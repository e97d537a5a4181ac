package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModulePath is the module Build builds from.
const ModulePath = "github.com/tollgate-dev/tollgate"

// Build compiles devidp, exchange and todo-api from the Tollgate module at
// sourceDir (empty: the module holding the working directory) into binDir,
// as binDir/devidp, binDir/exchange and binDir/todo-api. The compiler's
// output goes to out, prefixed "build".
func Build(ctx context.Context, sourceDir, binDir string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	if sourceDir == "" {
		var err error
		if sourceDir, err = FindModule(ctx); err != nil {
			return err
		}
	}
	// The todo API's SQLite driver is cgo. Without a C compiler the go
	// command quietly turns cgo off and builds a stub that fails only when
	// the todo API opens its database: say so now, plainly.
	cgo, err := exec.CommandContext(ctx, "go", "env", "CGO_ENABLED").Output()
	if err != nil {
		return fmt.Errorf("devstack: go env CGO_ENABLED: %w (is Go installed?)", err)
	}
	if strings.TrimSpace(string(cgo)) != "1" {
		return errors.New("devstack: cgo is off (CGO_ENABLED=0, or no C compiler found), but the todo API's SQLite driver needs it: install a C compiler (e.g. apt-get install gcc) and try again")
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", abs+string(filepath.Separator),
		"./cmd/"+DevIDP, "./cmd/"+Exchange, "./cmd/"+TodoAPI)
	cmd.Dir = sourceDir
	lw := &lineWriter{prefix: "build    | ", out: &lockedWriter{w: out}}
	cmd.Stdout, cmd.Stderr = lw, lw
	err = cmd.Run()
	lw.flush()
	if err != nil {
		return fmt.Errorf("devstack: go build in %s: %w\n%s", sourceDir, err, lw.tail())
	}
	return nil
}

// FindModule returns the root directory of the Tollgate module holding the
// working directory, as the go command finds it.
func FindModule(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("devstack: go env GOMOD: %w (is Go installed?)", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("devstack: the working directory is not inside the Tollgate module (%s); run from the repository", ModulePath)
	}
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("devstack: %w", err)
	}
	if modulePath(data) != ModulePath {
		return "", fmt.Errorf("devstack: %s is not the Tollgate module (%s); run from the repository", gomod, ModulePath)
	}
	return filepath.Dir(gomod), nil
}

// modulePath returns the path in go.mod's module directive.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
			rest, _, _ = strings.Cut(rest, "//")
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
