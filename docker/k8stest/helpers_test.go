package k8stest

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// dockerDir is docker/, the parent of this module.
const dockerDir = ".."

// repoRoot is the main module's root.
const repoRoot = "../.."

func dockerPath(elem ...string) string {
	return filepath.Join(append([]string{dockerDir}, elem...)...)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// yamlDocs splits a multi-document YAML stream, dropping documents that hold
// only comments and blank lines.
func yamlDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSep.Split(string(b), -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// promtool returns the path of promtool. Without it the test skips, or
// fails under CI=true.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/promtool"); serr == nil {
			return "/usr/bin/promtool"
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found (Debian package prometheus; make deps installs it): %v", err)
		}
		t.Skipf("promtool not found (apt-get install prometheus, or make deps): %v", err)
	}
	return p
}

// runPromtool runs promtool with args and fails the test on a non-zero exit.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	case err != nil:
		t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
	default:
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out.String())
	}
}

// exportedMetricNames returns the metric names the product exports: every
// string constant of the non-test files of the main module's packages
// metrics (metrics.NameSendDuration, ...) and loadgen (the run's own
// uringsend_loadgen_* metrics) that looks like a uringsend metric name.
func exportedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	name := regexp.MustCompile(`^uringsend_[a-z0-9_]+$`)
	for _, pkg := range []string{"metrics", "loadgen"} {
		files, err := filepath.Glob(filepath.Join(repoRoot, pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range af.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					for _, v := range spec.(*ast.ValueSpec).Values {
						lit, ok := v.(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						s, err := strconv.Unquote(lit.Value)
						if err == nil && name.MatchString(s) {
							names[s] = true
						}
					}
				}
			}
		}
	}
	return names
}

// metricRef finds the uringsend_* metric names a PromQL expression names
// (not recording rules' uringsend:* names, not substrings of other names).
var metricRef = regexp.MustCompile(`(?:^|[^A-Za-z0-9_:])(uringsend_[A-Za-z0-9_]+)`)

func metricsIn(expr string) []string {
	var out []string
	for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// unknownMetric reports whether name is neither an exported metric nor the
// _bucket, _sum or _count series of one.
func unknownMetric(name string, exported map[string]bool) bool {
	if exported[name] {
		return false
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && exported[base] {
			return false
		}
	}
	return true
}

// flagValue returns the value of -name (or --name, -name=v) in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
