package metrics

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where Serve listens when given an empty address: loopback
// only, on the port registered for OpenTelemetry's Prometheus exporter.
// Exposing metrics beyond the host is the operator's explicit choice.
const DefaultAddr = "127.0.0.1:9464"

// Handler returns an http.Handler that serves the metrics gathered from g
// (the caller's registry) in the Prometheus text format, or OpenMetrics
// when the scraper asks for it.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
		Timeout:           30 * time.Second,
	})
}

// Server serves Handler at /metrics. Create it with Serve.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	err  error // of http.Server.Serve, once done is closed
}

// Serve listens on addr (DefaultAddr when empty; port 0 picks a free port)
// and serves Handler(g) at /metrics in a goroutine of its own, until Close.
func Serve(addr string, g prometheus.Gatherer) (*Server, error) {
	if g == nil {
		return nil, errors.New("metrics: nil Gatherer")
	}
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(g))
	s := &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on, with the real port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the address of the metrics endpoint, "http://host:port/metrics".
func (s *Server) URL() string { return "http://" + s.Addr() + "/metrics" }

// Close closes the listener and every connection, waits for the serving
// goroutine to return, and reports the error it stopped with, if any
// besides being closed.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	if s.err != nil {
		return s.err
	}
	return err
}
