package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// implementationVersion is the version the report names: the middleware
// module's, which implements most of the cases. Bump with its tags.
const implementationVersion = "0.1.0"

// catalogFile lists the catalog's case ids; see doc.go.
const catalogFile = "testdata/catalog-ids.txt"

// result is the outcome of one case, as the report shows it.
type result struct {
	owner   string // the top-level test that registered the case
	status  string // passed, failed or skipped
	level   string // full, partial or none
	note    string
	failure string
}

// caseOption qualifies a case's coverage.
type caseOption func(*result)

// partial reports the case as partially covered, with what is left out.
func partial(note string) caseOption {
	return func(r *result) { r.level, r.note = "partial", note }
}

// noted adds a note to a fully covered case (a configuration the catalog's
// setup asks for, say).
func noted(note string) caseOption {
	return func(r *result) { r.note = note }
}

var (
	registryMu sync.Mutex
	registry   = map[string]*result{}
	// duplicates are ids registered by two different tests.
	duplicates []string
)

// register records id for the top-level test owner and returns its result
// to fill in. A second registration by the same test is a repeat
// (-count=2), not a duplicate.
func register(owner, id string) *result {
	registryMu.Lock()
	defer registryMu.Unlock()
	if r, ok := registry[id]; ok && r.owner != owner {
		duplicates = append(duplicates, fmt.Sprintf("%s (in %s and %s)", id, r.owner, owner))
	}
	r := &result{owner: owner, level: "full"}
	registry[id] = r
	return r
}

// runCase runs f as the subtest named id, the catalog case it checks, and
// records its outcome.
func runCase(t *testing.T, id string, f func(t *testing.T), opts ...caseOption) {
	t.Helper()
	r := register(t.Name(), id)
	for _, o := range opts {
		o(r)
	}
	t.Run(id, func(t *testing.T) {
		// Deferred, so that it also runs after t.Fatal.
		defer func() {
			registryMu.Lock()
			defer registryMu.Unlock()
			switch {
			case t.Failed():
				r.status, r.failure = "failed", "see the go test output of "+t.Name()
			case t.Skipped():
				r.status = "skipped"
			default:
				r.status = "passed"
			}
		}()
		f(t)
	})
}

// skipCase registers id as deliberately not exercised, for reason.
func skipCase(t *testing.T, id, reason string) {
	t.Helper()
	if reason == "" {
		t.Fatalf("%s: a skipped case needs a reason", id)
	}
	r := register(t.Name(), id)
	r.level, r.note = "none", reason
	t.Run(id, func(t *testing.T) {
		registryMu.Lock()
		r.status = "skipped"
		registryMu.Unlock()
		t.Skip(reason)
	})
}

// catalog is the content of catalogFile.
type catalog struct {
	id, version string
	cases       []string
}

func readCatalog() (catalog, error) {
	var c catalog
	data, err := os.ReadFile(catalogFile)
	if err != nil {
		return c, err
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "catalog_id:"):
			c.id = strings.TrimSpace(strings.TrimPrefix(line, "catalog_id:"))
		case strings.HasPrefix(line, "catalog_version:"):
			c.version = strings.TrimSpace(strings.TrimPrefix(line, "catalog_version:"))
		default:
			if seen[line] {
				return c, fmt.Errorf("%s: %s listed twice", catalogFile, line)
			}
			seen[line] = true
			c.cases = append(c.cases, line)
		}
	}
	if c.id == "" || c.version == "" || len(c.cases) == 0 {
		return c, fmt.Errorf("%s: needs catalog_id, catalog_version and case ids", catalogFile)
	}
	return c, nil
}

// filtered reports whether -run or -skip narrowed the run, when cases
// that were not selected are not run rather than missing.
func filtered() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return true
		}
	}
	return false
}

// alignment lists what is wrong between the catalog and the registry: a
// case with no test (unless a filter left it out), a test of no case, a
// case registered twice.
func alignment(c catalog) []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var problems []string
	known := map[string]bool{}
	for _, id := range c.cases {
		known[id] = true
		if _, ok := registry[id]; !ok && !filtered() {
			problems = append(problems, "catalog case without a test: "+id)
		}
	}
	for id, r := range registry {
		if !known[id] {
			problems = append(problems, "test of no catalog case: "+id)
		}
		if r.status == "skipped" && r.note == "" {
			problems = append(problems, "skipped without a reason: "+id)
		}
	}
	for _, d := range duplicates {
		problems = append(problems, "case registered twice: "+d)
	}
	return problems
}

// The report's shape, as the catalog's README defines it.
type (
	report struct {
		CatalogID       string         `json:"catalog_id"`
		CatalogVersion  string         `json:"catalog_version"`
		GeneratedAt     string         `json:"generated_at"`
		Implementation  implementation `json:"implementation"`
		Runner          runner         `json:"runner"`
		Summary         summary        `json:"summary"`
		Cases           []caseReport   `json:"cases"`
		AlignmentIssues []string       `json:"alignment_issues,omitempty"`
	}
	implementation struct {
		Name     string `json:"name"`
		Version  string `json:"version"`
		Language string `json:"language"`
	}
	runner struct {
		Tool       string `json:"tool"`
		ExitStatus int    `json:"exit_status"`
	}
	summary struct {
		Total   int `json:"total"`
		Passed  int `json:"passed"`
		Failed  int `json:"failed"`
		Skipped int `json:"skipped"`
		NotRun  int `json:"not_run"`
	}
	caseReport struct {
		CaseID   string   `json:"case_id"`
		Status   string   `json:"status"`
		Coverage coverage `json:"coverage"`
		Failure  *failure `json:"failure,omitempty"`
	}
	coverage struct {
		Level string `json:"level"`
		Note  string `json:"note,omitempty"`
	}
	failure struct {
		Message string `json:"message"`
	}
)

// buildReport assembles the report of this run, cases in catalog order.
func buildReport(c catalog, exit int, problems []string) report {
	registryMu.Lock()
	defer registryMu.Unlock()
	rep := report{
		CatalogID:       c.id,
		CatalogVersion:  c.version,
		GeneratedAt:     time.Now().UTC().Format(time.RFC3339),
		Implementation:  implementation{Name: "tollgate", Version: implementationVersion, Language: "go"},
		Runner:          runner{Tool: "go test", ExitStatus: exit},
		AlignmentIssues: problems,
	}
	for _, id := range c.cases {
		cr := caseReport{CaseID: id, Status: "not_run", Coverage: coverage{Level: "none"}}
		if r, ok := registry[id]; ok && r.status != "" {
			cr.Status, cr.Coverage = r.status, coverage{Level: r.level, Note: r.note}
			if r.status == "failed" {
				cr.Failure = &failure{Message: r.failure}
			}
		}
		switch cr.Status {
		case "passed":
			rep.Summary.Passed++
		case "failed":
			rep.Summary.Failed++
		case "skipped":
			rep.Summary.Skipped++
		default:
			rep.Summary.NotRun++
		}
		rep.Cases = append(rep.Cases, cr)
	}
	rep.Summary.Total = len(rep.Cases)
	return rep
}

func writeReport(path string, rep report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// TestMain runs the cases, then checks the alignment with the catalog
// (failing the run when it is off) and writes the report when
// CONFORMANCE_REPORT names a file.
func TestMain(m *testing.M) {
	code := m.Run()
	c, err := readCatalog()
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
	problems := alignment(c)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "conformance: alignment:", p)
	}
	if len(problems) > 0 && code == 0 {
		code = 1
	}
	if path := os.Getenv("CONFORMANCE_REPORT"); path != "" {
		rep := buildReport(c, code, problems)
		if rep.Summary.NotRun > 0 && code == 0 && !filtered() {
			code = 1
			rep.Runner.ExitStatus = code
		}
		if err := writeReport(path, rep); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: report:", err)
			code = 1
		}
	}
	os.Exit(code)
}
