package loadgen

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

func TestParseStartAt(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"2026-12-03T11:10:00Z", time.Date(2026, 12, 3, 11, 10, 0, 0, time.UTC)},
		{"2026-12-03T12:10:00.5+01:00", time.Date(2026, 12, 3, 11, 10, 0, 5e8, time.UTC)},
		{"2026-12-03T11:10:00.123456789Z", time.Date(2026, 12, 3, 11, 10, 0, 123456789, time.UTC)},
		{"1796296200", time.Unix(1796296200, 0)},
		{" 1796296200.25 ", time.Unix(1796296200, 25e7)},
		{"1796296200.000000001", time.Unix(1796296200, 1)},
	} {
		got, err := ParseStartAt(c.in)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseStartAt(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "now", "+10s", "2026-12-03", "2026-12-03 11:10:00", "1796296200.", ".5", "-1", "1e9", "1796296200.1234567891", "99999999999999999999"} {
		if got, err := ParseStartAt(in); err == nil {
			t.Errorf("ParseStartAt(%q) = %v; want an error", in, got)
		}
	}
}

// A bad -start-at (or $URINGSEND_START_AT) is a ConfigError naming the
// flag; the flag wins over the environment.
func TestStartAtFlag(t *testing.T) {
	_, err := ParseRunFlags([]string{"-start-at", "tomorrow"}, DefaultConfig())
	if !IsConfigError(err) || !strings.Contains(err.Error(), "-start-at") || !strings.Contains(err.Error(), "tomorrow") {
		t.Errorf("-start-at tomorrow: %v; want a ConfigError naming the flag and the value", err)
	}
	t.Setenv(StartAtEnv, "2026-12-03T11:10:00Z")
	c, err := ParseRunFlags(nil, DefaultConfig())
	if err != nil || !c.StartAt.Equal(time.Date(2026, 12, 3, 11, 10, 0, 0, time.UTC)) {
		t.Errorf("$%s: StartAt %v, %v", StartAtEnv, c.StartAt, err)
	}
	c, err = ParseRunFlags([]string{"-start-at", "1796296200"}, DefaultConfig())
	if err != nil || !c.StartAt.Equal(time.Unix(1796296200, 0)) {
		t.Errorf("-start-at over $%s: StartAt %v, %v", StartAtEnv, c.StartAt, err)
	}
	t.Setenv(StartAtEnv, "soon")
	if _, err := ParseRunFlags(nil, DefaultConfig()); !IsConfigError(err) || !strings.Contains(err.Error(), "-start-at from $"+StartAtEnv) {
		t.Errorf("$%s=soon: %v; want a ConfigError naming it", StartAtEnv, err)
	}
	t.Setenv(StartAtEnv, "")
	if c, err := ParseRunFlags(nil, DefaultConfig()); err != nil || !c.StartAt.IsZero() {
		t.Errorf("empty $%s: StartAt %v, %v; want none", StartAtEnv, c.StartAt, err)
	}
	if _, err := ParseRunFlags([]string{"-metrics-linger", "1s"}, DefaultConfig()); !IsConfigError(err) || !strings.Contains(err.Error(), "-metrics-linger") {
		t.Errorf("-metrics-linger without -metrics-addr: %v", err)
	}
}

// A run with StartAt connects, waits, and starts sending then: its report
// has the times, the lag, and the whole latency histogram.
func TestRunStartAt(t *testing.T) {
	at := time.Now().Add(300 * time.Millisecond).Round(0)
	rep := mustRun(t, quick(func(c *Config) { c.StartAt = at }))
	checkClean(t, rep)
	started, err1 := time.Parse(time.RFC3339Nano, rep.StartedAt)
	ended, err2 := time.Parse(time.RFC3339Nano, rep.EndedAt)
	startAt, err3 := time.Parse(time.RFC3339Nano, rep.StartAt)
	if err1 != nil || err2 != nil || err3 != nil || !startAt.Equal(at) || !ended.After(started) {
		t.Fatalf("start_at %q, started_at %q, ended_at %q", rep.StartAt, rep.StartedAt, rep.EndedAt)
	}
	lag := time.Duration(rep.StartLagSeconds * 1e9)
	if d := started.Sub(at) - lag; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("start lag %v, but started_at − start_at = %v", lag, started.Sub(at))
	}
	// Generous for a loaded machine; the multi-host test logs real ones.
	if lag < -time.Millisecond || lag > 50*time.Millisecond || rep.StartedLate != (lag > StartLateAfter) {
		t.Errorf("start lag %v, late %v", lag, rep.StartedLate)
	}
	if got := ended.Sub(started).Seconds(); got < rep.DurationSeconds-1e-6 || got > rep.DurationSeconds+1e-6 {
		t.Errorf("ended_at − started_at = %vs; duration_seconds %v", got, rep.DurationSeconds)
	}
	// The histograms are serialized when the report is marshaled.
	if rep.LatencyHistogram != "" {
		t.Errorf("Run's report encoded its histogram before it was asked to")
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	rep = &got
	h, err := hdr.Decode([]byte(rep.LatencyHistogram))
	if err != nil || rep.HistogramUnit != "ns" {
		t.Fatalf("latency_histogram: %v, unit %q", err, rep.HistogramUnit)
	}
	if n := uint64(h.TotalCount()); n != rep.Messages-rep.DrainMessages || float64(h.ValueAtQuantile(99))/1e9 != rep.Latency.P99 {
		t.Errorf("histogram: %d values, p99 %d ns; report: %d messages (%d drained), p99 %v", n, h.ValueAtQuantile(99), rep.Messages, rep.DrainMessages, rep.Latency.P99)
	}
	if h.LowestTrackableValue() != histMin || h.HighestTrackableValue() < histMax || h.SignificantFigures() != histSigFigs {
		t.Errorf("histogram settings %d, %d, %d", h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures())
	}
	c, err := hdr.Decode([]byte(rep.ConnectLatencyHistogram))
	if err != nil || c.TotalCount() != int64(rep.Conns) {
		t.Errorf("connect_latency_histogram: %v, %d values for %d connections", err, c.TotalCount(), rep.Conns)
	}
}

// A StartAt that has passed when the connections are made: the run starts
// at once and its report says it started late.
func TestRunStartAtLate(t *testing.T) {
	at := time.Now().Add(-time.Second)
	rep := mustRun(t, quick(func(c *Config) { c.StartAt = at }))
	checkClean(t, rep)
	if !rep.StartedLate || rep.StartLagSeconds < 1 {
		t.Errorf("late %v, lag %vs; want late by more than 1s", rep.StartedLate, rep.StartLagSeconds)
	}
	var b strings.Builder
	rep.WriteText(&b)
	if !strings.Contains(b.String(), "LATE (more than 10ms): sending began 1.") {
		t.Errorf("text report does not flag the late start:\n%s", b.String())
	}
}

// A signal while waiting for StartAt ends the run at once: nothing sent,
// the report says interrupted.
func TestRunStartAtInterrupted(t *testing.T) {
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	var rep *Report
	var err error
	var status syncBuffer
	go func() {
		defer close(done)
		rep, err = Run(quick(func(c *Config) { c.StartAt = time.Now().Add(time.Hour) }), sig, &status)
	}()
	// Connected and waiting: then the signal.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(status.String(), "sending starts at"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no \"sending starts at\" note in 10 s:\n%s", status.String())
		}
	}
	sig <- os.Interrupt
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waits for -start-at after a signal")
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !rep.Interrupted || rep.Messages != 0 || rep.Errors != 0 || rep.StartLagSeconds > -3500 {
		t.Fatalf("interrupted %v, %d messages, %d errors, lag %vs; want interrupted about an hour early, nothing sent",
			rep.Interrupted, rep.Messages, rep.Errors, rep.StartLagSeconds)
	}
	var b strings.Builder
	rep.WriteText(&b)
	if !strings.Contains(b.String(), "s before it; nothing sent\n") {
		t.Errorf("text:\n%s", b.String())
	}
}
