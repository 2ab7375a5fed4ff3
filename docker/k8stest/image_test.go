package k8stest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDockerfile: FROM scratch (nothing to pull), the binaries from bin/,
// a numeric non-root USER, OCI labels, uringsend as the entrypoint and the
// metrics port exposed.
func TestDockerfile(t *testing.T) {
	var from, user, entrypoint []string
	var copies, exposes []string
	labels := map[string]bool{}
	// Join continuation lines.
	text := strings.ReplaceAll(string(readFile(t, dockerPath("Dockerfile"))), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			from = append(from, rest)
		case "USER":
			user = append(user, rest)
		case "ENTRYPOINT":
			entrypoint = append(entrypoint, rest)
		case "COPY", "ADD":
			copies = append(copies, rest)
		case "EXPOSE":
			exposes = append(exposes, strings.Fields(rest)...)
		case "LABEL":
			for _, f := range strings.Fields(rest) {
				if k, _, ok := strings.Cut(f, "="); ok {
					labels[k] = true
				}
			}
		}
	}
	if len(from) != 1 || from[0] != "scratch" {
		t.Errorf("FROM %q: want a single FROM scratch", from)
	}
	if len(user) == 0 {
		t.Fatal("no USER: the image would run as root")
	}
	uid, gid, _ := strings.Cut(user[len(user)-1], ":")
	for _, id := range []string{uid, gid} {
		if n, err := strconv.Atoi(id); err != nil || n == 0 {
			t.Errorf("USER %s: want numeric, non-zero uid:gid (scratch has no /etc/passwd)", user[len(user)-1])
		}
	}
	for _, c := range copies {
		src := strings.Fields(c)[0]
		if !strings.HasPrefix(src, "bin/") {
			t.Errorf("COPY %s: want the binaries from bin/ (built by build-image.sh)", c)
		}
	}
	if len(entrypoint) != 1 {
		t.Fatalf("ENTRYPOINT %q: want one", entrypoint)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint[0]), &ep); err != nil || len(ep) == 0 || filepath.Base(ep[0]) != "uringsend" {
		t.Errorf("ENTRYPOINT %s: want the exec form of uringsend (%v)", entrypoint[0], err)
	}
	if !contains9464(exposes) {
		t.Errorf("EXPOSE %q: want 9464", exposes)
	}
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source",
		"org.opencontainers.image.licenses", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if !labels[l] {
			t.Errorf("no LABEL %s", l)
		}
	}
	// The build context is docker/: .dockerignore sends only bin/.
	ign := string(readFile(t, dockerPath(".dockerignore")))
	if !strings.Contains(ign, "!bin/") {
		t.Errorf(".dockerignore does not let bin/ through:\n%s", ign)
	}
}

func contains9464(ports []string) bool {
	for _, p := range ports {
		if p == "9464" || p == "9464/tcp" {
			return true
		}
	}
	return false
}

// TestBuildImageScript: build-image.sh is executable, parses, and builds
// static, trimmed binaries with docker or podman.
func TestBuildImageScript(t *testing.T) {
	path := dockerPath("build-image.sh")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable", path)
	}
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Errorf("bash -n %s: %v\n%s", path, err, out)
	}
	s := string(readFile(t, path))
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "docker info", "podman", "uringsend:dev"} {
		if !strings.Contains(s, want) {
			t.Errorf("%s does not contain %q", path, want)
		}
	}
}
