package k8stest

import (
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/uringsend/uringsend/loadgen"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kinds maps apiVersion/kind to the typed object a manifest must parse
// into. A manifest of any other kind fails the test: add its type here.
var kinds = map[string]func() runtime.Object{
	"batch/v1/Job":                            func() runtime.Object { return &batchv1.Job{} },
	"apps/v1/Deployment":                      func() runtime.Object { return &appsv1.Deployment{} },
	"v1/Service":                              func() runtime.Object { return &corev1.Service{} },
	"v1/ConfigMap":                            func() runtime.Object { return &corev1.ConfigMap{} },
	"monitoring.coreos.com/v1/PodMonitor":     func() runtime.Object { return &monitoringv1.PodMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() runtime.Object { return &monitoringv1.PrometheusRule{} },
}

type manifest struct {
	file string
	obj  runtime.Object
}

// loadManifests parses every document of every docker/k8s/*.yaml strictly
// (unknown or duplicate fields fail) into its Kubernetes API type.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(dockerPath("k8s", "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifests in docker/k8s")
	}
	var out []manifest
	for _, f := range files {
		for i, doc := range yamlDocs(readFile(t, f)) {
			where := fmt.Sprintf("%s (document %d)", filepath.Base(f), i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
			if !ok {
				t.Fatalf("%s: apiVersion %q kind %q: no API type known to this test", where, tm.APIVersion, tm.Kind)
			}
			obj := newObj()
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: strict parse into %T: %v", where, obj, err)
			}
			m, err := metaOf(obj)
			if err != nil {
				t.Fatal(err)
			}
			if m.GetName() == "" {
				t.Errorf("%s: no metadata.name", where)
			}
			out = append(out, manifest{file: where, obj: obj})
		}
	}
	return out
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no ObjectMeta", obj)
	}
	return m, nil
}

func only[T runtime.Object](t *testing.T, ms []manifest) T {
	t.Helper()
	var found []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T in docker/k8s, found %d", zero, len(found))
	}
	return found[0]
}

func TestManifestsParseStrictly(t *testing.T) {
	ms := loadManifests(t)
	seen := map[string]int{}
	for _, m := range ms {
		seen[reflect.TypeOf(m.obj).Elem().Name()]++
		t.Logf("%s: %T %s", m.file, m.obj, m.obj.(metav1.Object).GetName())
	}
	for _, k := range []string{"Job", "Deployment", "Service", "PodMonitor", "PrometheusRule"} {
		if seen[k] == 0 {
			t.Errorf("no %s in docker/k8s", k)
		}
	}
}

// TestStrictParseCatchesTypos guards the guard: a misspelt field must fail.
func TestStrictParseCatchesTypos(t *testing.T) {
	doc := []byte("apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec:\n  completionMod: Indexed\n")
	if err := yaml.UnmarshalStrict(doc, &batchv1.Job{}); err == nil {
		t.Fatal("UnmarshalStrict accepted an unknown field")
	}
}

// runArgs returns the arguments after "run" of the image's uringsend
// entrypoint in c.
func runArgs(t *testing.T, c corev1.Container) []string {
	t.Helper()
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(c.Command) > 0 {
		if filepath.Base(c.Command[0]) != "uringsend" {
			t.Fatalf("container %s: command %q is not uringsend", c.Name, c.Command)
		}
		argv = argv[1:]
	}
	if len(argv) == 0 || argv[0] != "run" {
		t.Fatalf("container %s: want `uringsend run ...`, have %q", c.Name, argv)
	}
	return argv[1:]
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

func TestLoadJob(t *testing.T) {
	ms := loadManifests(t)
	job := only[*batchv1.Job](t, ms)
	svc := only[*corev1.Service](t, ms)
	spec := job.Spec

	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode: want Indexed")
	}
	if spec.Completions == nil || spec.Parallelism == nil || *spec.Completions < 1 || *spec.Parallelism != *spec.Completions {
		t.Fatalf("want parallelism = completions = N >= 1, have %v and %v", spec.Parallelism, spec.Completions)
	}
	n := int(*spec.Completions)
	if p := spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q: want Never (a restarted shard would resend its share)", p)
	}
	if len(spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(spec.Template.Spec.Containers))
	}
	c := spec.Template.Spec.Containers[0]
	args := runArgs(t, c)

	// The share of each pod: -shards N with JOB_COMPLETION_INDEX, which
	// Kubernetes sets in every pod of an Indexed Job.
	shards, ok := flagValue(args, "shards")
	if !ok {
		t.Fatalf("args %q: no -shards: each pod would send the whole -rate", args)
	}
	if shards != strconv.Itoa(n) {
		t.Errorf("-shards %s: want completions = %d", shards, n)
	}

	// Parse with the CLI's own parser, as each pod does: Kubernetes sets
	// JOB_COMPLETION_INDEX (0 … N−1) in every pod of an Indexed Job, and
	// the CLI refuses -shards without it.
	var cfg loadgen.Config
	for i := n - 1; i >= 0; i-- {
		t.Setenv(loadgen.ShardIndexEnv, strconv.Itoa(i))
		c, err := loadgen.ParseRunFlags(args, loadgen.DefaultConfig())
		if err != nil {
			t.Fatalf("pod %d: %s=%d uringsend run %s: %v", i, loadgen.ShardIndexEnv, i, strings.Join(args, " "), err)
		}
		if c.Shards != n || c.ShardIndex != i {
			t.Errorf("pod %d: Config.Shards, ShardIndex = %d, %d: want %d, %d", i, c.Shards, c.ShardIndex, n, i)
		}
		cfg = c
	}
	t.Logf("uringsend run %s\n  -> target %v, rate %v, duration %v, conns %d, size %v, shards %d, metrics %q",
		strings.Join(args, " "), cfg.Target, cfg.Rate, cfg.Duration, cfg.Conns, cfg.Size, cfg.Shards, cfg.MetricsAddr)

	// The target is the sink Service, by its cluster DNS name and port.
	if cfg.Target.Network != "tcp" {
		t.Errorf("-target %v: want tcp", cfg.Target)
	}
	host, port, err := net.SplitHostPort(cfg.Target.Address)
	if err != nil {
		t.Fatalf("-target %v: %v", cfg.Target, err)
	}
	ns := svc.Namespace
	if ns == "" {
		ns = "default"
	}
	if want := svc.Name + "." + ns + ".svc"; host != want && host != want+".cluster.local" {
		t.Errorf("-target host %q: want the Service %s", host, want)
	}
	if len(svc.Spec.Ports) == 0 || port != strconv.Itoa(int(svc.Spec.Ports[0].Port)) {
		t.Errorf("-target port %s: want the Service's port %v", port, svc.Spec.Ports)
	}

	// Open loop for a fixed time, ended by the Job's deadline at the latest.
	if cfg.Rate <= 0 {
		t.Errorf("-rate: want a total rate to share (open loop)")
	}
	if cfg.Duration <= 0 {
		t.Errorf("-duration: want a fixed duration")
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && time.Duration(*d)*time.Second <= cfg.Duration {
		t.Errorf("activeDeadlineSeconds %d: shorter than -duration %v", *d, cfg.Duration)
	}

	// Metrics on the port that the annotations, the port name and the
	// PodMonitor agree on.
	_, mport, err := net.SplitHostPort(cfg.MetricsAddr)
	if err != nil {
		t.Fatalf("-metrics-addr %q: %v", cfg.MetricsAddr, err)
	}
	if mport != "9464" {
		t.Errorf("-metrics-addr %q: want port 9464", cfg.MetricsAddr)
	}
	if p, ok := containerPort(c, "metrics"); !ok || strconv.Itoa(int(p)) != mport {
		t.Errorf("container port \"metrics\" = %d, %v: want %s", p, ok, mport)
	}
	ann := spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != mport {
		t.Errorf("annotations %v: want prometheus.io/scrape \"true\" and prometheus.io/port %q", ann, mport)
	}

	// io_uring needs a seccomp profile that allows it (RuntimeDefault of
	// containerd 2 does not), and the image runs as non-root.
	sc := spec.Template.Spec.SecurityContext
	if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost ||
		sc.SeccompProfile.LocalhostProfile == nil || *sc.SeccompProfile.LocalhostProfile == "" {
		t.Errorf("pod securityContext.seccompProfile: want a Localhost profile (docker/seccomp-iouring.json on the nodes)")
	}
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("pod securityContext: want runAsNonRoot")
	}
}

func TestSinkDeploymentAndService(t *testing.T) {
	ms := loadManifests(t)
	dep := only[*appsv1.Deployment](t, ms)
	svc := only[*corev1.Service](t, ms)

	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	podLabels := labelSet(dep.Spec.Template.Labels)
	if !sel.Matches(podLabels) {
		t.Errorf("Deployment selector %v does not match its pods %v", sel, podLabels)
	}
	for k, v := range svc.Spec.Selector {
		if podLabels[k] != v {
			t.Errorf("Service selector %v does not select the sink pods %v", svc.Spec.Selector, podLabels)
			break
		}
	}
	if len(svc.Spec.Selector) == 0 {
		t.Errorf("Service has no selector")
	}
	job := only[*batchv1.Job](t, ms)
	jobLabels := labelSet(job.Spec.Template.Labels)
	if len(svc.Spec.Selector) > 0 && labelsMatch(svc.Spec.Selector, jobLabels) {
		t.Errorf("Service selector %v also selects the load generators", svc.Spec.Selector)
	}

	c := dep.Spec.Template.Spec.Containers[0]
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(c.Command) > 0 {
		argv = argv[1:]
	}
	if len(argv) == 0 || argv[0] != "sink" {
		t.Fatalf("sink container: want `uringsend sink ...`, have %q", argv)
	}
	cfg, err := loadgen.ParseSinkFlags(argv[1:])
	if err != nil {
		t.Fatalf("uringsend sink %s: %v", strings.Join(argv[1:], " "), err)
	}
	_, lport, err := net.SplitHostPort(cfg.Listen.Address)
	if err != nil || cfg.Listen.Network != "tcp" {
		t.Fatalf("-listen %v: want tcp://host:port (%v)", cfg.Listen, err)
	}
	sp := svc.Spec.Ports[0]
	var target int32
	switch sp.TargetPort.Type {
	case intstr.String:
		p, ok := containerPort(c, sp.TargetPort.StrVal)
		if !ok {
			t.Fatalf("Service targetPort %q: no such container port", sp.TargetPort.StrVal)
		}
		target = p
	default:
		target = sp.TargetPort.IntVal
	}
	if strconv.Itoa(int(target)) != lport {
		t.Errorf("Service targets port %d, the sink listens on %s", target, lport)
	}
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

func labelsMatch(sel map[string]string, l labelSet) bool {
	for k, v := range sel {
		if l[k] != v {
			return false
		}
	}
	return true
}

func TestPodMonitorAndRules(t *testing.T) {
	ms := loadManifests(t)
	pm := only[*monitoringv1.PodMonitor](t, ms)
	job := only[*batchv1.Job](t, ms)

	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labelSet(job.Spec.Template.Labels)) {
		t.Errorf("PodMonitor selector %v does not select the Job's pods %v", sel, job.Spec.Template.Labels)
	}
	if nsSel := pm.Spec.NamespaceSelector; !nsSel.Any && len(nsSel.MatchNames) > 0 {
		ns := job.Namespace
		if ns == "" {
			ns = "default"
		}
		if !slices.Contains(nsSel.MatchNames, ns) {
			t.Errorf("PodMonitor namespaces %v miss the Job's %q", nsSel.MatchNames, ns)
		}
	}
	if len(pm.Spec.PodMetricsEndpoints) == 0 {
		t.Fatal("PodMonitor has no podMetricsEndpoints")
	}
	for _, ep := range pm.Spec.PodMetricsEndpoints {
		if ep.Port == nil {
			t.Errorf("PodMonitor endpoint without a port name")
			continue
		}
		if _, ok := containerPort(job.Spec.Template.Spec.Containers[0], *ep.Port); !ok {
			t.Errorf("PodMonitor port %q: the Job's container has no such port", *ep.Port)
		}
	}

	// The PrometheusRule holds the same groups as docker/prometheus-rules.yml.
	pr := only[*monitoringv1.PrometheusRule](t, ms)
	var file monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(readFile(t, dockerPath("prometheus-rules.yml")), &file); err != nil {
		t.Fatalf("docker/prometheus-rules.yml: %v", err)
	}
	if !reflect.DeepEqual(file, pr.Spec) {
		a, _ := yaml.Marshal(file)
		b, _ := yaml.Marshal(pr.Spec)
		t.Errorf("PrometheusRule %s differs from docker/prometheus-rules.yml:\nfile:\n%s\nmanifest:\n%s", pr.Name, a, b)
	}
	rules, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "prometheusrule.yml")
	if err := writeFile(f, rules); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, "check", "rules", f)

	// The total of all pods is recorded, and every rule names only
	// exported metrics.
	exported := exportedMetricNames(t)
	total := false
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			expr := r.Expr.String()
			if strings.ReplaceAll(expr, " ", "") == "sum(rate(uringsend_sent_bytes_total[1m]))" {
				total = true
			}
			for _, m := range metricsIn(expr) {
				if unknownMetric(m, exported) {
					t.Errorf("rule %s%s: %s is not a metric uringsend exports", r.Record, r.Alert, m)
				}
			}
		}
	}
	if !total {
		t.Errorf("no rule records sum(rate(uringsend_sent_bytes_total[1m]))")
	}
}
