// Package envflag reads a program's settings from environment variables and
// equal command-line flags: FOO_BAR is also -foo-bar, the flag wins, and
// --help lists every setting with its variable and default. Every Tollgate
// binary parses its settings through it so that they all behave alike.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrHelp is returned by Parse when the user asked for --help; the usage has
// already been printed.
var ErrHelp = flag.ErrHelp

// Set is a group of settings for one program.
type Set struct {
	fs       *flag.FlagSet
	getenv   func(string) string
	lookenv  func(string) (string, bool)
	required []string
	values   map[string]*string
}

// New returns a Set for the program name that reads the environment through
// getenv and prints usage to out.
func New(name string, getenv func(string) string, out io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	s := &Set{fs: fs, getenv: getenv, values: map[string]*string{}}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage of %s (each setting is an environment variable or the equal flag; the flag wins):\n", name)
		fs.VisitAll(func(f *flag.Flag) {
			env := FlagToEnv(f.Name)
			def := f.DefValue
			if def == "" {
				def = "unset"
			}
			fmt.Fprintf(out, "  -%s, %s (default %s)\n    \t%s\n", f.Name, env, def, f.Usage)
		})
	}
	return s
}

// NewLookup is New for a lookup function such as os.LookupEnv, under which a
// variable set to the empty string counts as set: FOO= then means "empty",
// not "default".
func NewLookup(name string, lookupEnv func(string) (string, bool), out io.Writer) *Set {
	s := New(name, func(k string) string { v, _ := lookupEnv(k); return v }, out)
	s.lookenv = lookupEnv
	return s
}

// EnvToFlag turns an environment variable name into its flag name.
func EnvToFlag(env string) string {
	return strings.ReplaceAll(strings.ToLower(env), "_", "-")
}

// FlagToEnv turns a flag name into its environment variable name.
func FlagToEnv(flagName string) string {
	return strings.ReplaceAll(strings.ToUpper(flagName), "-", "_")
}

// String declares a string setting. The returned pointer holds its value
// after Parse.
func (s *Set) String(env, def, usage string) *string {
	v := new(string)
	*v = def
	s.fs.StringVar(v, EnvToFlag(env), def, usage)
	s.values[env] = v
	return v
}

// Required declares a string setting that must be non-empty after Parse.
func (s *Set) Required(env, usage string) *string {
	s.required = append(s.required, env)
	return s.String(env, "", usage+" (required)")
}

// Duration declares a duration setting such as "60s" or "5m".
func (s *Set) Duration(env string, def time.Duration, usage string) *time.Duration {
	v := new(time.Duration)
	*v = def
	s.fs.Var(&durationValue{v: v}, EnvToFlag(env), usage)
	return v
}

// OffDuration declares a duration setting for which 0 means "off": the
// value read is then negative (-1ns), which is what the configuration
// structs of this module, whose zero field means "the default", take for
// off. This is the one place where a setting's 0 becomes a field's "off".
func (s *Set) OffDuration(env string, def time.Duration, usage string) *time.Duration {
	v := new(time.Duration)
	*v = def
	s.fs.Var(&durationValue{v: v, zeroIsOff: true}, EnvToFlag(env), usage)
	return v
}

// Bool declares a boolean setting (true, false, 1, 0).
func (s *Set) Bool(env string, def bool, usage string) *bool {
	v := new(bool)
	*v = def
	s.fs.BoolVar(v, EnvToFlag(env), def, usage)
	return v
}

// Int declares an integer setting.
func (s *Set) Int(env string, def int, usage string) *int {
	v := new(int)
	*v = def
	s.fs.IntVar(v, EnvToFlag(env), def, usage)
	return v
}

// IntAtLeast declares an integer setting whose value must be at least min;
// the check is the setting's, so 0 given for a field whose zero means "the
// default" is refused here rather than silently becoming the default.
func (s *Set) IntAtLeast(env string, def, min int, usage string) *int {
	v := new(int)
	*v = def
	s.fs.Var(&minIntValue{v: v, min: min}, EnvToFlag(env), usage)
	return v
}

type minIntValue struct {
	v   *int
	min int
}

func (m *minIntValue) String() string {
	if m == nil || m.v == nil {
		return ""
	}
	return strconv.Itoa(*m.v)
}

func (m *minIntValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	if n < m.min {
		return fmt.Errorf("must be at least %d", m.min)
	}
	*m.v = n
	return nil
}

// Parse applies the environment, then args, and checks required settings.
// Its error is one line naming the setting at fault.
func (s *Set) Parse(args []string) error {
	var errs []error
	s.fs.VisitAll(func(f *flag.Flag) {
		env := FlagToEnv(f.Name)
		if raw, ok := s.lookup(env); ok {
			if err := f.Value.Set(raw); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value %q: %v", env, truncate(raw), unwrapFlagErr(err)))
			}
		}
	})
	if len(errs) > 0 {
		return errs[0]
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", s.fs.Arg(0))
	}
	for _, env := range s.required {
		if strings.TrimSpace(*s.values[env]) == "" {
			return fmt.Errorf("%s is required (environment variable %s or flag -%s)", env, env, EnvToFlag(env))
		}
	}
	return nil
}

// Set reports whether the setting env was given, in the environment or as a flag.
func (s *Set) Set(env string) bool {
	if _, ok := s.lookup(env); ok {
		return true
	}
	found := false
	s.fs.Visit(func(f *flag.Flag) {
		if f.Name == EnvToFlag(env) {
			found = true
		}
	})
	return found
}

func (s *Set) lookup(env string) (string, bool) {
	if s.lookenv != nil {
		return s.lookenv(env)
	}
	v := s.getenv(env)
	return v, v != ""
}

// List splits a comma-separated setting into its trimmed, non-empty items.
func List(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

type durationValue struct {
	v         *time.Duration
	zeroIsOff bool
}

func (d *durationValue) String() string {
	if d == nil || d.v == nil {
		return ""
	}
	if *d.v < 0 {
		return "0s"
	}
	return d.v.String()
}

func (d *durationValue) set(v time.Duration) {
	if v == 0 && d.zeroIsOff {
		v = -1
	}
	*d.v = v
}

func (d *durationValue) Set(s string) error {
	// A bare number is seconds, which is what people write in env files.
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return errors.New("must not be negative")
		}
		d.set(time.Duration(n) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`want a duration such as "60s" or "5m"`)
	}
	if v < 0 {
		return errors.New("must not be negative")
	}
	d.set(v)
	return nil
}

func unwrapFlagErr(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// truncate keeps a bad value short in error messages; settings that hold
// secrets are never echoed by callers in the first place.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
