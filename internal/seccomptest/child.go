package seccomptest

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// EnvVar is set in the environment of a child started by RunChild.
const EnvVar = "URINGSEND_SECCOMPTEST_CHILD"

// InChild reports whether this process is a child started by RunChild (or
// Command), in which the test may install a filter.
func InChild() bool { return os.Getenv(EnvVar) != "" }

// Command returns a command that runs only the test named test of the
// current test binary, with EnvVar set. Extra arguments go to the test
// binary.
func Command(test string, args ...string) *exec.Cmd {
	a := append([]string{"-test.run=^" + regexp.QuoteMeta(test) + "$", "-test.count=1", "-test.v"}, args...)
	cmd := exec.Command(os.Args[0], a...)
	cmd.Env = append(os.Environ(), EnvVar+"=1")
	if _, ok := os.LookupEnv("GORACE"); !ok {
		// A race-enabled child otherwise sleeps a second at exit.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	return cmd
}

// RunChild runs the test named test in a child process (see Command) and
// fails t, with the child's output, unless the child ran that test and it
// passed. A test the child skipped is skipped here too.
func RunChild(t testing.TB, test string) {
	t.Helper()
	out, err := Command(test).CombinedOutput()
	s := string(out)
	switch {
	case strings.Contains(s, "--- SKIP: "+test+" "):
		t.Skipf("child skipped:\n%s", s)
	case err != nil:
		t.Fatalf("child %s: %v\n%s", test, err, s)
	case !strings.Contains(s, "--- PASS: "+test+" "):
		t.Fatalf("child did not run %s:\n%s", test, s)
	}
}
