// Command uringproxy is a TCP proxy whose sends — and, with -recv engine
// (the default on io_uring), reads — run on the uringsend engine (package
// proxy). Its reads go into the engine's receive pool (multishot receives
// into a provided buffer ring, Linux 6.0), so an idle connection holds no
// buffer; -recv-own-buffers (and older kernels) read into buffers of its
// own:
//
//	uringproxy -listen 127.0.0.1:6380 -upstream 127.0.0.1:6379 [-metrics-addr 127.0.0.1:9465] [-recv engine|net|auto] [-recv-own-buffers]
//
// SIGTERM or SIGINT stops accepting, drains the sends in flight (for at
// most 30 s) and exits 0; a second signal closes everything at once and
// exits 130. Exit status: 0 after a signal; 1 when the proxy cannot start,
// stops on its own or cannot drain in time; 2 bad usage; 130 interrupted
// twice.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/proxy"
)

// drainTimeout bounds the drain after the first signal.
const drainTimeout = 30 * time.Second

func main() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], sig, os.Stderr))
}

// run is the command with its signals and output as parameters, for tests.
func run(args []string, sig <-chan os.Signal, stderr io.Writer) int {
	cfg := proxy.DefaultConfig()
	fs := flag.NewFlagSet("uringproxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	usage := func() {
		fs.SetOutput(stderr)
		fmt.Fprintln(stderr, "usage: uringproxy -listen host:port -upstream host:port [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return 0
		}
		fmt.Fprintln(stderr, "uringproxy:", err)
		usage()
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "uringproxy: unexpected argument %q\n", fs.Arg(0))
		usage()
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "uringproxy:", err)
		usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	p, err := proxy.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "uringproxy:", err)
		return 1
	}
	recv := p.RecvMode()
	switch {
	case p.RecvPool():
		recv += " (receive pool)"
	case recv == proxy.RecvEngine:
		recv += " (own buffers)"
	}
	msg := fmt.Sprintf("uringproxy: listening on %s, upstream %s, backend %s, recv %s", p.Addr(), cfg.Upstream, p.Backend(), recv)
	if u := p.MetricsURL(); u != "" {
		msg += ", metrics " + u
	}
	fmt.Fprintln(stderr, msg)

	served := make(chan error, 1)
	go func() { served <- p.Serve() }()
	select {
	case err := <-served:
		fmt.Fprintln(stderr, "uringproxy:", err)
		p.Close()
		return 1
	case s := <-sig:
		fmt.Fprintf(stderr, "uringproxy: %v: draining\n", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(stderr, "uringproxy: %v: closing now\n", s)
			cancel()
		case <-ctx.Done():
		}
	}()
	err = p.Shutdown(ctx)
	<-served
	switch {
	case errors.Is(err, context.Canceled):
		return 130
	case err != nil:
		fmt.Fprintln(stderr, "uringproxy: shutdown:", err)
		return 1
	}
	fmt.Fprintln(stderr, "uringproxy: stopped")
	return 0
}
