package main

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/internal/plot"
)

var updatePlotPNG = flag.Bool("update-plot-png", false, "TestE2EPlotChromium writes its screenshot to docs/plot.png")

// A -json report, and a -json-stream cut short, for the usage tests.
const (
	plotReport = `{"command": "run", "target": "tcp://127.0.0.1:9000", "messages": 10,
  "latency_seconds": {"p50": 1e-5, "p90": 2e-5, "p99": 3e-5, "p999": 4e-5, "max": 5e-5}}
`
	plotStream = `{"type":"interval","at_seconds":1,"interval_seconds":1,"messages":5,"messages_per_second":5,"bits_per_second":320,"latency_seconds":{"p50":1e-5,"p90":2e-5,"p99":3e-5,"p999":4e-5,"max":5e-5}}
`
)

func plotFiles(t *testing.T) (dir, report, stream string) {
	t.Helper()
	dir = t.TempDir()
	report, stream = filepath.Join(dir, "report.json"), filepath.Join(dir, "stream.ndjson")
	for p, s := range map[string]string{report: plotReport, stream: plotStream} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, report, stream
}

// Exit status and message of every kind of bad usage and bad input.
func TestPlotUsage(t *testing.T) {
	dir, report, _ := plotFiles(t)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(plotReport+"{\"type\": \"interval\",\n oops}\n"), 0o644)
	out := filepath.Join(dir, "out.html")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string // a line of stderr begins so
	}{
		{"no args", nil, 2, "uringsend plot: no report files"},
		{"no -o", []string{report}, 2, "uringsend plot: -o is required"},
		{"unknown flag", []string{report, "-o", out, "-width", "3"}, 2, "uringsend plot: flag provided but not defined: -width"},
		{"flag without value", []string{report, "-o"}, 2, "uringsend plot: flag needs an argument: -o"},
		{"stdin twice", []string{"-", "-", "-o", out}, 2, "uringsend plot: - (stdin) given twice"},
		{"missing file", []string{filepath.Join(dir, "nope.json"), "-o", out}, 1, "uringsend plot: open " + filepath.Join(dir, "nope.json") + ": no such file or directory"},
		{"directory", []string{dir, "-o", out}, 1, "uringsend plot: " + dir + ": read " + dir + ": is a directory"},
		{"invalid", []string{report, bad, "-o", out}, 1, "uringsend plot: " + bad + ": line 4: not JSON: invalid character 'o'"},
		{"unwritable", []string{report, "-o", filepath.Join(dir, "no", "such", "dir.html")}, 1, "uringsend plot: open " + filepath.Join(dir, "no", "such", "dir.html")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := plotCmd(tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code || !strings.HasPrefix(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, want %d; stderr:\n%s\nwant it to begin %q", code, tc.code, stderr.String(), tc.stderr)
			}
			if code == 2 && !strings.Contains(stderr.String(), "usage: uringsend plot") {
				t.Errorf("bad usage without the usage:\n%s", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a failed plot wrote its page")
			}
		})
	}

	var stdout, stderr bytes.Buffer
	if code := plotCmd([]string{"-h"}, nil, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "usage: uringsend plot") ||
		!strings.Contains(stdout.String(), "-title title") || stderr.Len() != 0 {
		t.Errorf("-h: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// Flags before, between and after the files; -o - is stdout, - stdin;
// files of the same name are told apart by their paths.
func TestPlotArgs(t *testing.T) {
	dir, report, stream := plotFiles(t)
	other := filepath.Join(dir, "b")
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "report.json"), []byte(plotReport), 0o644)

	var stdout, stderr bytes.Buffer
	code := plotCmd([]string{"-title", "A <b>test</b>", report, "-o", "-", stream, "-", filepath.Join(other, "report.json")},
		strings.NewReader(plotStream), &stdout, &stderr)
	if code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	page := stdout.String()
	for _, want := range []string{
		"<title>A &lt;b&gt;test&lt;/b&gt;</title>",
		"from " + report + ", stream.ndjson, stdin, " + filepath.Join(other, "report.json") + ".",
		`id="` + plot.IDMessages + `"`, `id="` + plot.IDLatencyRange + `"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	// After --, a file may begin with a dash.
	dash := filepath.Join(dir, "-r.json")
	os.WriteFile(dash, []byte(plotReport), 0o644)
	out := filepath.Join(dir, "out.html")
	stdout.Reset()
	if code := plotCmd([]string{"-o", out, "--", dash}, nil, &stdout, &stderr); code != 0 || stdout.Len() != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Contains(b, []byte("-r.json")) {
		t.Errorf("%v: %.200s", err, b)
	}
}

// chromium is headless Chromium's path, or the test skips (fails on CI).
func needChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is missing (make deps installs it)")
	}
	t.Skip("chromium not installed (make deps installs Debian's chromium)")
	return ""
}

// runChromium runs headless Chromium on the page with args, at most 30 s,
// in a process group of its own that ends with it, and returns its
// stdout and how long it took. Console messages go to stderr, which it
// checks: the page has no script, so any console message (a CSP
// violation, an SVG attribute Chromium could not parse) is an error.
func runChromium(t *testing.T, chromium, page string, args ...string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
		"--enable-logging=stderr", "--v=0"}, args...)
	cmd := exec.CommandContext(ctx, chromium, append(args, "file://"+page)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its helpers, if any outlived it
	}
	if err != nil {
		t.Fatalf("chromium %v: %v (after %v)\n%s", args, err, took.Round(time.Millisecond), stderr.String())
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") || strings.Contains(l, "Uncaught") {
			t.Errorf("console: %s", l)
		}
	}
	return stdout.String(), took
}

// The page of two real runs — a -json-stream on io_uring and a -json
// report on epoll, against a uringsend sink on loopback — rendered by
// headless Chromium: every chart is in the DOM with its lines, the
// console has nothing to say, and the screenshot shows the runs'
// colours. -update-plot-png keeps the screenshot as docs/plot.png.
func TestE2EPlotChromium(t *testing.T) {
	chromium := needChromium(t)
	bin := build(t)
	dir := t.TempDir()
	sink := startSink(t, bin, "-listen", "tcp://127.0.0.1:0", "-interval", "0")
	runs := []struct {
		file string
		args []string
	}{
		{"io_uring.ndjson", []string{"-backend", "io_uring", "-duration", "2s", "-interval", "200ms", "-omit", "400ms", "-json-stream"}},
		{"epoll.json", []string{"-backend", "epoll", "-duration", "1s", "-json"}},
	}
	var files []string
	for _, r := range runs {
		res := runBin(t, bin, append([]string{"run", "-target", sink.addr, "-conns", "4", "-rate", "100k/s"}, r.args...)...)
		if res.code != 0 {
			t.Fatalf("%v: exit %d\n%s", r.args, res.code, res.stderr)
		}
		p := filepath.Join(dir, r.file)
		if err := os.WriteFile(p, []byte(res.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	sink.stop(t)

	var stream *plot.Run
	if f, err := os.Open(files[0]); err != nil {
		t.Fatal(err)
	} else if stream, err = plot.Read("stream", f); err != nil {
		t.Fatal(err)
	}
	if len(stream.Intervals) < 8 || stream.Report == nil {
		t.Fatalf("the stream has %d intervals, report %v", len(stream.Intervals), stream.Report != nil)
	}
	withHist := stream.Report.LatencyHistogram != ""

	page := filepath.Join(dir, "report.html")
	args := append([]string{"plot", "-title", "uringsend: io_uring and epoll at 100k messages/s"}, files...)
	args = append(args, "-o", page)
	if res := runBin(t, bin, "plot", "-h"); res.code == 0 && strings.HasPrefix(res.stdout, "usage: uringsend plot") {
		if res := runBin(t, bin, args...); res.code != 0 {
			t.Fatalf("uringsend plot: exit %d\n%s", res.code, res.stderr)
		}
	} else {
		t.Logf("main.go does not dispatch plot yet: calling plotMain directly")
		if code := plotMain(args[1:]); code != 0 {
			t.Fatalf("plotMain: exit %d", code)
		}
	}

	dom, domTook := runChromium(t, chromium, page, "--dump-dom")
	// Each chart with its lines: the stream's on all of them, the epoll
	// report's only on the spectrum (it has no intervals).
	for id, lines := range map[string]int{plot.IDMessages: 1, plot.IDBits: 1, plot.IDLatencyTime: 5, plot.IDLatencyRange: 2} {
		m := regexp.MustCompile(`(?s)<svg class="chart" id="` + id + `"[^>]*>(.*?)</svg>`).FindStringSubmatch(dom)
		if m == nil {
			t.Errorf("no chart %s in the DOM", id)
			continue
		}
		paths := regexp.MustCompile(`<path class="series" d="M[0-9.,LM ]+"`).FindAllString(m[1], -1)
		ticks := regexp.MustCompile(`<text class="tick`).FindAllString(m[1], -1)
		if len(paths) != lines || len(ticks) < 6 {
			t.Errorf("chart %s: %d lines, %d tick labels; want %d lines", id, len(paths), len(ticks), lines)
		}
		if id == plot.IDLatencyRange {
			// A histogram's spectrum has a point every 1/50 decade; the
			// five percentiles of a report without one are dots.
			if n := strings.Count(paths[0], "L"); withHist != (n > 100) {
				t.Errorf("the stream's spectrum has %d segments; the report has a histogram: %v", n, withHist)
			}
			t.Logf("spectrum: %d segments (latency_histogram in the report: %v)", strings.Count(paths[0], "L"), withHist)
		}
	}
	for _, want := range []string{"<h2>Settings and results</h2>", "<td>epoll</td>", "<td>io_uring</td>", "<td>" + sink.addr + "</td>", "epoll.json (no intervals)"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM lacks %q", want)
		}
	}

	shot := filepath.Join(dir, "plot.png")
	_, shotTook := runChromium(t, chromium, page, "--screenshot="+shot, "--window-size=1200,1600")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 1600 {
		t.Errorf("screenshot %v", b)
	}
	// The runs' colours are on the screen: the charts were drawn.
	blue, orange := countColor(img, 0x4e, 0x79, 0xa7), countColor(img, 0xf2, 0x8e, 0x2b)
	if blue < 2000 || orange < 100 {
		t.Errorf("the screenshot has %d pixels of the first run's colour, %d of the second's", blue, orange)
	}
	st, _ := os.Stat(shot)
	t.Logf("page %d bytes; chromium: DOM in %v, screenshot in %v (%d bytes, %d+%d pixels of the runs' colours)",
		fileSize(page), domTook.Round(time.Millisecond), shotTook.Round(time.Millisecond), st.Size(), blue, orange)
	if *updatePlotPNG {
		b, _ := os.ReadFile(shot)
		docs := filepath.Join("..", "..", "docs")
		if err := os.MkdirAll(docs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(docs, "plot.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// countColor counts img's pixels within a few levels of r, g, b.
func countColor(img image.Image, r, g, b uint8) int {
	near := func(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d >= -6 && d <= 6 }
	n := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr, r) && near(pg, g) && near(pb, b) {
				n++
			}
		}
	}
	return n
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return st.Size()
}
