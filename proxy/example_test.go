package proxy_test

import (
	"context"
	"log"
	"time"

	"github.com/uringsend/uringsend/proxy"
)

// A proxy in front of a local Redis, stopped after a minute with a drain
// of at most 10 s.
func Example() {
	cfg := proxy.DefaultConfig()
	cfg.Listen = "127.0.0.1:6380"
	cfg.Upstream = "127.0.0.1:6379"
	cfg.MetricsAddr = "127.0.0.1:9465"
	p, err := proxy.New(cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	go p.Serve()
	time.Sleep(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Print(err)
	}
}
