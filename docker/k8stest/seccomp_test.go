package k8stest

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var ioUringSyscalls = []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}

func loadJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	var v map[string]any
	dec := json.NewDecoder(strings.NewReader(string(readFile(t, path))))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: not valid JSON: %v", path, err)
	}
	if dec.More() {
		t.Fatalf("%s: data after the JSON object", path)
	}
	return v
}

// TestSeccompProfileIsDefaultPlusIOURing: docker/seccomp-iouring.json is the
// vendored default profile (docker/testdata/seccomp-default.json, see
// docker/testdata/README) with io_uring_setup, io_uring_enter and
// io_uring_register allowed unconditionally — and nothing else changed.
func TestSeccompProfileIsDefaultPlusIOURing(t *testing.T) {
	def := loadJSON(t, dockerPath("testdata", "seccomp-default.json"))
	ours := loadJSON(t, dockerPath("seccomp-iouring.json"))

	if def["defaultAction"] != "SCMP_ACT_ERRNO" {
		t.Fatalf("the vendored default profile's defaultAction is %v: not Docker's default profile?", def["defaultAction"])
	}
	if n := len(entries(t, def)); n < 10 {
		t.Fatalf("the vendored default profile has %d syscall entries: not Docker's default profile?", n)
	}
	for _, e := range entries(t, def) {
		for _, n := range names(e) {
			if slices.Contains(ioUringSyscalls, n) {
				t.Fatalf("the vendored default profile already names %s", n)
			}
		}
	}

	// Each of the three: named exactly once, in an entry that allows it
	// whatever the arguments, kernel, architecture or capabilities.
	for _, sc := range ioUringSyscalls {
		count := 0
		for _, e := range entries(t, ours) {
			if !slices.Contains(names(e), sc) {
				continue
			}
			count++
			if e["action"] != "SCMP_ACT_ALLOW" {
				t.Errorf("%s: action %v, want SCMP_ACT_ALLOW", sc, e["action"])
			}
			for _, cond := range []string{"args", "includes", "excludes"} {
				if !emptyJSON(e[cond]) {
					t.Errorf("%s: allowed only under %s %v", sc, cond, e[cond])
				}
			}
		}
		if count != 1 {
			t.Errorf("%s: named in %d entries, want 1", sc, count)
		}
	}

	// Without the three, the profile is the default one, exactly.
	stripped := stripSyscalls(t, ours, ioUringSyscalls)
	if !reflect.DeepEqual(stripped, def) {
		a, _ := json.MarshalIndent(stripped, "", " ")
		b, _ := json.MarshalIndent(def, "", " ")
		t.Errorf("seccomp-iouring.json less the io_uring calls differs from the default profile:\n%s", firstDiff(string(a), string(b)))
	}
}

func entries(t *testing.T, profile map[string]any) []map[string]any {
	t.Helper()
	raw, ok := profile["syscalls"].([]any)
	if !ok {
		t.Fatalf("profile has no syscalls list")
	}
	var out []map[string]any
	for _, r := range raw {
		e, ok := r.(map[string]any)
		if !ok {
			t.Fatalf("syscalls entry %v is not an object", r)
		}
		out = append(out, e)
	}
	return out
}

func names(e map[string]any) []string {
	var out []string
	if raw, ok := e["names"].([]any); ok {
		for _, n := range raw {
			if s, ok := n.(string); ok {
				out = append(out, s)
			}
		}
	}
	if s, ok := e["name"].(string); ok {
		out = append(out, s)
	}
	return out
}

func emptyJSON(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// stripSyscalls returns a deep copy of profile without the names drop; an
// entry left with no name (one added just for them) is removed.
func stripSyscalls(t *testing.T, profile map[string]any, drop []string) map[string]any {
	t.Helper()
	b, err := json.Marshal(profile)
	if err != nil {
		t.Fatal(err)
	}
	var cp map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&cp); err != nil {
		t.Fatal(err)
	}
	var kept []any
	for _, e := range entries(t, cp) {
		raw, _ := e["names"].([]any)
		var left []any
		for _, n := range raw {
			if s, _ := n.(string); !slices.Contains(drop, s) {
				left = append(left, n)
			}
		}
		if len(raw) > 0 && len(left) == 0 {
			continue
		}
		if raw != nil {
			e["names"] = left
		}
		kept = append(kept, e)
	}
	cp["syscalls"] = kept
	return cp
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			lo := max(0, i-3)
			return "ours:\n" + strings.Join(al[lo:min(len(al), i+4)], "\n") +
				"\ndefault:\n" + strings.Join(bl[lo:min(len(bl), i+4)], "\n")
		}
	}
	return "lengths differ"
}
