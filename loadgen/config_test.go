package loadgen

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseRunFlags(t *testing.T) {
	c, err := ParseRunFlags(nil, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c.Conns != 8 || c.Size != 64 || c.Mode != ModeBuffer || c.Duration != 10*time.Second || c.Inflight != MaxWindowInflight || c.Window != DefaultWindow ||
		c.Interval != time.Second || c.Backend != BackendAuto || c.ZeroCopy != ZeroCopyAuto || !c.Target.IsZero() || c.MetricsAddr != "" {
		t.Errorf("defaults: %+v", c)
	}

	c, err = ParseRunFlags(strings.Fields(
		"-target udp://127.0.0.1:9000 -conns 3 -size 1KiB -mode bufferlist -segments 7 -inflight 5 -rate 50k/s "+
			"-duration 3s -messages 2M -zerocopy off -batching on -backend epoll -metrics-addr 127.0.0.1:0 -interval 250ms -json -verify"), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Target: Target{"udp", "127.0.0.1:9000"}, Conns: 3, Size: 1024, Mode: ModeBufferList, Segments: 7, Inflight: 5,
		Rate: 50000, Duration: 3 * time.Second, Messages: 2000000, ZeroCopy: ZeroCopyOff, Batching: BatchingOn, Backend: BackendEpoll,
		MetricsAddr: "127.0.0.1:0", Interval: 250 * time.Millisecond, JSON: true, Verify: true,
		DialTimeout: DefaultDialTimeout, DrainTimeout: DefaultDrainTimeout, Window: DefaultWindow, MaxErrors: -1, DialRetries: DefaultDialRetries,
	}
	if c != want {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}

	// -messages alone lifts the default duration; with -duration both count.
	c, err = ParseRunFlags([]string{"-messages", "10k"}, DefaultConfig())
	if err != nil || c.Duration != 0 || c.Messages != 10000 {
		t.Errorf("-messages alone: %v, duration %v, messages %d", err, c.Duration, c.Messages)
	}
	// Defaults that follow from other flags.
	c, err = ParseRunFlags([]string{"-rate", "1k/s"}, DefaultConfig())
	if err != nil || c.Inflight != DefaultOpenInflight {
		t.Errorf("-rate: inflight %d, %v", c.Inflight, err)
	}
	c, err = ParseRunFlags([]string{"-mode", "bufferlist", "-size", "2"}, DefaultConfig())
	if err != nil || c.Segments != 2 {
		t.Errorf("bufferlist of 2 bytes: segments %d, %v", c.Segments, err)
	}
	c, err = ParseRunFlags([]string{"-mode", "bufferlist"}, DefaultConfig())
	if err != nil || c.Segments != DefaultSegments {
		t.Errorf("bufferlist: segments %d, %v", c.Segments, err)
	}

	if _, err := ParseRunFlags([]string{"-h"}, DefaultConfig()); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestParseRunFlagsErrors(t *testing.T) {
	for _, args := range []string{
		"-bogus",
		"-size 12QB",
		"-size 0",
		"-size 2GiB",
		"-rate fast",
		"-rate -5/s",
		"-target http://x:1",
		"-target tcp://127.0.0.1",
		"-target tcp://127.0.0.1:0",
		"-target tcp://:9000",
		"-conns 0",
		"-conns -1",
		"-inflight -1",
		"-inflight 100000",
		"-mode vector",
		"-segments 4",
		"-mode bufferlist -segments 2000",
		"-mode bufferlist -size 3 -segments 4",
		"-duration -1s",
		"-duration 0",
		"-duration 10",
		"-zerocopy maybe",
		"-batching sometimes",
		"-backend dpdk",
		"-interval 1ms",
		"-metrics-addr nonsense",
		"-verify -size 16",
		"-target udp://127.0.0.1:9 -size 64KiB",
		"-messages 1m",
		"-conns 100000 -inflight 1000",
		"-verify -conns 100 -inflight 100 -size 1MiB",
		"stray",
		// Zero is the default inside a Config, a mistake on the command line.
		"-inflight 0",
		"-mode bufferlist -segments 0",
		"-window 0",
		"-rings 0",
		"-sq-entries 0",
		"-sq-entries 1",
		"-zc-threshold 0",
		"-drain-timeout 0",
		"-shards 4", // no -shard-index, no $JOB_COMPLETION_INDEX
		"-shards 4 -shard-index 4",
		"-window -1",
		"-omit 10s",
		"-omit -1s",
		"-json-stream -interval 0",
		"-max-p99 -1ms",
		"-dial-retries -1",
		"-connect-rate fast",
		"-tos 256",
		"-bind 10.0.0.300",
		"-bind ''",
		"-congestion cubic -target udp://127.0.0.1:9",
		"-rate 10Qbit/s",
		"-fq-rate fast",
		"-sndbuf 2GiB",
		"-rings 65",
	} {
		_, err := ParseRunFlags(strings.Fields(args), DefaultConfig())
		if err == nil {
			t.Errorf("%q: no error", args)
			continue
		}
		if !IsConfigError(err) {
			t.Errorf("%q: %v is not a ConfigError", args, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error is not one line: %q", args, err)
		}
	}
}

func TestValidateFillsDefaults(t *testing.T) {
	c := Config{Conns: 1, Size: 100, Duration: time.Second}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeBuffer || c.ZeroCopy != ZeroCopyAuto || c.Backend != BackendAuto || c.Inflight != MaxWindowInflight || c.Window != DefaultWindow ||
		c.DialTimeout != DefaultDialTimeout || c.DrainTimeout != DefaultDrainTimeout {
		t.Errorf("%+v", c)
	}
	// Validate is idempotent.
	d := c
	if err := d.Validate(); err != nil || d != c {
		t.Errorf("second Validate: %v, %+v", err, d)
	}
	if err := (&Config{Conns: 1, Size: 1, Messages: 5}).Validate(); err != nil {
		t.Errorf("messages only: %v", err)
	}
	if err := (&Config{Conns: 1, Size: 1}).Validate(); err == nil {
		t.Error("neither duration nor messages: no error")
	}
}

func TestParseSinkFlags(t *testing.T) {
	c, err := ParseSinkFlags(strings.Fields("-listen udp://:9000 -verify -json -interval 2s"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != (Target{"udp", ":9000"}) || !c.Verify || !c.JSON || c.Interval != 2*time.Second {
		t.Errorf("%+v", c)
	}
	for _, args := range []string{"", "-listen", "-listen tcp://x", "-listen http://x:1", "-bogus", "-listen tcp://:1 extra", "-interval -1s -listen tcp://:1"} {
		if _, err := ParseSinkFlags(strings.Fields(args)); err == nil || !IsConfigError(err) {
			t.Errorf("%q: %v, want a ConfigError", args, err)
		}
	}
}

// -shards splits the rate and the messages; the index comes from
// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) unless -shard-index is set.
func TestShards(t *testing.T) {
	t.Setenv(ShardIndexEnv, "3")
	c, err := ParseRunFlags(strings.Fields("-target tcp://127.0.0.1:9 -shards 4 -rate 100k/s -messages 10"), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c.Shards != 4 || c.ShardIndex != 3 {
		t.Fatalf("shards %d index %d", c.Shards, c.ShardIndex)
	}
	total := Count(0)
	for i := 0; i < 4; i++ {
		c.ShardIndex = i
		s := c.sharded()
		if s.Rate != 25000 {
			t.Fatalf("shard %d rate %v, want 25k/s", i, s.Rate)
		}
		if want := Count(2 + map[bool]int{true: 1}[i < 2]); s.Messages != want {
			t.Fatalf("shard %d messages %d, want %d", i, s.Messages, want)
		}
		total += s.Messages
	}
	if total != 10 {
		t.Fatalf("shards send %d messages in all, want 10", total)
	}
	if c, err = ParseRunFlags(strings.Fields("-target tcp://127.0.0.1:9 -shards 4 -shard-index 1"), DefaultConfig()); err != nil || c.ShardIndex != 1 {
		t.Fatalf("-shard-index overrides the environment: %d, %v", c.ShardIndex, err)
	}
	for _, bad := range []string{"-shards 4 -shard-index 4", "-shards -1", "-shards 2 -shard-index -1", "-shards 8 -messages 3"} {
		if _, err := ParseRunFlags(strings.Fields("-target tcp://127.0.0.1:9 "+bad), DefaultConfig()); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	t.Setenv(ShardIndexEnv, "x")
	if _, err := ParseRunFlags(strings.Fields("-target tcp://127.0.0.1:9 -shards 2"), DefaultConfig()); err == nil {
		t.Error("a non-numeric JOB_COMPLETION_INDEX accepted")
	}
}
