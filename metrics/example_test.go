package metrics_test

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uringsend/uringsend/metrics"
	"github.com/uringsend/uringsend/socket"
)

// An engine is given the Metrics; the program owns the registry and
// serves it. Here one 5-byte write goes to a loopback peer, and the
// scrape shows it.
func Example() {
	reg := prometheus.NewRegistry() // the program's own, never the default
	reg.MustRegister(collectors.NewGoCollector())
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		log.Fatal(err)
	}
	eng, err := socket.NewEngine(socket.EngineConfig{Metrics: m})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	s, err := socket.Dial("tcp", l.Addr().String(), socket.WithEngine(eng))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.Write([]byte("hello")); err != nil {
		log.Fatal(err)
	}
	s.Close()

	srv, err := metrics.Serve("127.0.0.1:0", reg) // "" means 127.0.0.1:9464
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, metrics.NameSentBytes+" ") || strings.HasPrefix(line, metrics.NameInflightSends+" ") {
			fmt.Println(line)
		}
	}
	// Output:
	// uringsend_inflight_sends 0
	// uringsend_sent_bytes_total 5
}
