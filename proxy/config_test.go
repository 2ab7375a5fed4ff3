package proxy

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	good := map[string]Size{
		"512": 512, "512B": 512, "32KiB": 32 << 10, "4MiB": 4 << 20, "1GiB": 1 << 30,
		"64kB": 64000, "1MB": 1000000, "64k": 64000, "1m": 1000000, " 2 mib ": 2 << 20, "1.5KiB": 1536,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "-1KiB", "0.5B", "4XB", "0x10", "1_000", "NaN", "Inf", "2TiB", "3000GB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %v; want an error", in, got)
		}
	}
	for _, z := range []Size{0, 1, 1536, 32 << 10, 4 << 20, 3 << 30} {
		if back, err := ParseSize(z.String()); err != nil || back != z {
			t.Errorf("ParseSize(%v.String() = %q) = %v, %v", int64(z), z.String(), back, err)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Listen, ok.Upstream = "127.0.0.1:0", "localhost:6379"
	if err := ok.Validate(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	cases := []struct {
		edit func(c *Config)
		want string
	}{
		{func(c *Config) { c.Listen = "" }, "-listen is required"},
		{func(c *Config) { c.Listen = "6380" }, "want host:port"},
		{func(c *Config) { c.Upstream = "" }, "-upstream is required"},
		{func(c *Config) { c.Upstream = "127.0.0.1:0" }, "port 0"},
		{func(c *Config) { c.Upstream = ":6379" }, "no host"},
		{func(c *Config) { c.Upstream = "127.0.0.1:nosuchservice" }, "bad port"},
		{func(c *Config) { c.MetricsAddr = "9465" }, "-metrics-addr"},
		{func(c *Config) { c.Backend = "kqueue" }, "-backend"},
		{func(c *Config) { c.Recv = "splice" }, "-recv"},
		{func(c *Config) { c.BufferSize = 100 }, "-buffer-size"},
		{func(c *Config) { c.MaxInflight = 1 << 10 }, "at least -buffer-size"},
		{func(c *Config) { c.MaxInflight = 2 << 30 }, "at most 1GiB"},
		{func(c *Config) { c.RecvPool = -1 }, "-recv-pool"},
		{func(c *Config) { c.RecvPool = 1<<15 + 1 }, "-recv-pool"},
		{func(c *Config) { c.SendTimeout = -time.Second }, "-send-timeout"},
		{func(c *Config) { c.IdleTimeout = -time.Second }, "-idle-timeout"},
		{func(c *Config) { c.DialTimeout = 0 }, "-dial-timeout"},
	}
	for _, tc := range cases {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Validate(%+v) = %v; want one line with %q", c, err, tc.want)
		}
		if _, err := New(c, nil); err == nil {
			t.Errorf("New accepted %+v", c)
		}
	}
}

func TestRegisterFlags(t *testing.T) {
	c := DefaultConfig()
	applyFlags(t, &c, []string{"-listen", "127.0.0.1:6380", "-upstream", "127.0.0.1:6379", "-metrics-addr", "127.0.0.1:9465",
		"-backend", "epoll", "-recv", "engine", "-max-inflight", "8MiB", "-buffer-size", "64KiB", "-send-timeout", "5s", "-idle-timeout", "0", "-dial-timeout", "1s",
		"-recv-own-buffers", "-recv-pool", "4096"})
	want := Config{Listen: "127.0.0.1:6380", Upstream: "127.0.0.1:6379", MetricsAddr: "127.0.0.1:9465", Backend: "epoll", Recv: "engine",
		MaxInflight: 8 << 20, BufferSize: 64 << 10, SendTimeout: 5 * time.Second, IdleTimeout: 0, DialTimeout: time.Second,
		RecvOwnBuffers: true, RecvPool: 4096}
	if c != want {
		t.Fatalf("flags gave %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if want.slots() != 128 {
		t.Fatalf("slots() = %d; want 8MiB / 64KiB = 128", want.slots())
	}
}
