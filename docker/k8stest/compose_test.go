package k8stest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/uringsend/uringsend/loadgen"
	"sigs.k8s.io/yaml"
)

type composeFile struct {
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image      string   `json:"image"`
	Command    []string `json:"command"`
	SecurityOp []string `json:"security_opt"`
	Volumes    []string `json:"volumes"`
	Expose     []string `json:"expose"`
}

func loadCompose(t *testing.T) (map[string]any, composeFile) {
	t.Helper()
	b := readFile(t, dockerPath("compose.yaml"))
	var generic map[string]any
	if err := yaml.Unmarshal(b, &generic); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return generic, cf
}

// interpolation is compose's ${VAR:-default} / ${VAR-default} / ${VAR}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}`)

// interpolate substitutes the defaults, as `docker compose` does with none
// of the variables set. A variable without a default fails the test: the
// file must work as it is.
func interpolate(t *testing.T, s string) string {
	t.Helper()
	s = interpolation.ReplaceAllStringFunc(s, func(m string) string {
		sm := interpolation.FindStringSubmatch(m)
		if sm[2] == "" {
			t.Errorf("compose.yaml: %s has no default", m)
		}
		return sm[3]
	})
	return strings.ReplaceAll(s, "$$", "$")
}

// TestComposeReferencesExistingFiles: compose.yaml parses as YAML, and every
// local path it names (bind mounts, the seccomp profile, anything starting
// with ./ or ../) exists relative to docker/.
func TestComposeReferencesExistingFiles(t *testing.T) {
	generic, _ := loadCompose(t)
	var paths []string
	collectPaths(generic, &paths)
	if len(paths) < 4 {
		t.Fatalf("found only %d local paths in compose.yaml: %q", len(paths), paths)
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(dockerDir, p)); err != nil {
			t.Errorf("compose.yaml references %s: %v", p, err)
		}
	}
	t.Logf("paths: %q", paths)
}

func collectPaths(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			collectPaths(x, out)
		}
	case []any:
		for _, x := range v {
			collectPaths(x, out)
		}
	case string:
		s := v
		if rest, ok := strings.CutPrefix(s, "seccomp="); ok {
			s = rest
		} else if rest, ok := strings.CutPrefix(s, "seccomp:"); ok {
			s = rest
		}
		if strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") || s == "." {
			src, _, _ := strings.Cut(s, ":") // a bind mount's source
			*out = append(*out, src)
		}
	}
}

// TestComposeServices: a sink, load generators sending to it with metrics
// on the port Prometheus scrapes, Prometheus and Grafana; the uringsend
// services run with the io_uring seccomp profile and valid command lines
// (parsed by the CLI's own parsers).
func TestComposeServices(t *testing.T) {
	generic, cf := loadCompose(t)
	for _, s := range []string{"sink", "loadgen", "prometheus", "grafana"} {
		if _, ok := cf.Services[s]; !ok {
			t.Errorf("compose.yaml has no service %q", s)
		}
	}

	var sinkPort string
	sink := cf.Services["sink"]
	if len(sink.Command) == 0 || sink.Command[0] != "sink" {
		t.Fatalf("service sink: command %q, want `sink ...`", sink.Command)
	}
	sc, err := loadgen.ParseSinkFlags(interpolateAll(t, sink.Command[1:]))
	if err != nil {
		t.Fatalf("service sink: uringsend %s: %v", strings.Join(sink.Command, " "), err)
	}
	_, sinkPort, _ = net.SplitHostPort(sc.Listen.Address)
	sinkMetrics := sc.MetricsAddr
	_, sinkMetricsPort, err := net.SplitHostPort(sinkMetrics)
	if err != nil {
		t.Errorf("service sink: -metrics-addr %q: want host:port, the target of the uringsend-sink scrape job (%v)", sinkMetrics, err)
	}

	lg := cf.Services["loadgen"]
	if len(lg.Command) == 0 || lg.Command[0] != "run" {
		t.Fatalf("service loadgen: command %q, want `run ...`", lg.Command)
	}
	args := interpolateAll(t, lg.Command[1:])
	rc, err := loadgen.ParseRunFlags(args, loadgen.DefaultConfig())
	if err != nil {
		t.Fatalf("service loadgen: uringsend run %s: %v", strings.Join(args, " "), err)
	}
	if want := net.JoinHostPort("sink", sinkPort); rc.Target.Network != "tcp" || rc.Target.Address != want {
		t.Errorf("loadgen -target %v: want tcp://%s", rc.Target, want)
	}
	_, mport, err := net.SplitHostPort(rc.MetricsAddr)
	if err != nil || mport != "9464" {
		t.Errorf("loadgen -metrics-addr %q: want :9464 (%v)", rc.MetricsAddr, err)
	}

	// Prometheus finds the replicas by the service's DNS name, on that port.
	var pc struct {
		ScrapeConfigs []struct {
			JobName      string `json:"job_name"`
			DNSSDConfigs []struct {
				Names []string
				Type  string
				Port  int
			} `json:"dns_sd_configs"`
			StaticConfigs []struct {
				Targets []string
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, dockerPath("prometheus.yml")), &pc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sc := range pc.ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			if slices.Contains(d.Names, "loadgen") && fmt.Sprint(d.Port) == mport {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("prometheus.yml: no dns_sd_configs for the loadgen service on port %s", mport)
	}
	// And the sink on the port of its -metrics-addr: a scrape target that is up.
	sinkTarget := net.JoinHostPort("sink", sinkMetricsPort)
	found = false
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			found = found || slices.Contains(st.Targets, sinkTarget)
		}
	}
	if !found {
		t.Errorf("prometheus.yml: no static target %s for the sink's -metrics-addr %q", sinkTarget, sinkMetrics)
	}
	if !slices.Contains(cf.Services["sink"].Expose, sinkMetricsPort) {
		t.Errorf("service sink: expose %q lacks its metrics port %s", cf.Services["sink"].Expose, sinkMetricsPort)
	}

	// Every uringsend service: the image of `make image`, with the profile.
	for name, s := range cf.Services {
		if !strings.HasPrefix(s.Image, "uringsend:") {
			continue
		}
		if !slices.Contains(s.SecurityOp, "seccomp=./seccomp-iouring.json") {
			t.Errorf("service %s: security_opt %q lacks seccomp=./seccomp-iouring.json", name, s.SecurityOp)
		}
	}
	if len(lg.SecurityOp) == 0 {
		t.Errorf("service loadgen: no security_opt")
	}

	// Grafana mounts the dashboard where its provisioning looks.
	var prov struct {
		Providers []struct {
			Options struct {
				Path string
			}
		}
	}
	if err := yaml.Unmarshal(readFile(t, dockerPath("grafana", "provisioning", "dashboards", "uringsend.yml")), &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Providers) != 1 {
		t.Fatalf("grafana dashboards provisioning: want one provider, have %d", len(prov.Providers))
	}
	mounted := false
	for _, v := range cf.Services["grafana"].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasSuffix(parts[0], "uringsend-dashboard.json") &&
			filepath.Dir(parts[1]) == prov.Providers[0].Options.Path {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("grafana: the dashboard is not mounted in the provisioned path %s", prov.Providers[0].Options.Path)
	}
	_ = generic
}

func interpolateAll(t *testing.T, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = interpolate(t, a)
	}
	return out
}
