package proxy

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Proxy metric names, beside the engine's uringsend_* metrics.
const (
	NameConnections      = "uringsend_proxy_connections_total"
	NameOpenConnections  = "uringsend_proxy_open_connections"
	NameConnectionEnds   = "uringsend_proxy_connection_ends_total"
	NameProxiedBytes     = "uringsend_proxy_read_bytes_total"
	NameHeldBytes        = "uringsend_proxy_inflight_buffer_bytes"
	NameHeldBuffers      = "uringsend_proxy_held_buffers"
	labelReason          = "reason"
	labelDirection       = "direction"
	directionToUpstream  = "to_upstream"
	directionToClient    = "to_client"
	directionIndexUp     = 0
	directionIndexClient = 1
)

// stats counts what the proxy does with atomics only; Collect reads them
// (and the live connections' byte counters) and emits const metrics.
type stats struct {
	p           *Proxy
	accepted    atomic.Uint64
	ends        [numEndReasons]atomic.Uint64
	closedBytes [2]atomic.Uint64 // of connections that have ended, by direction

	connsDesc, openDesc, endsDesc, bytesDesc, heldDesc, bufsDesc *prometheus.Desc
}

func newStats(p *Proxy) *stats {
	return &stats{
		p:         p,
		connsDesc: prometheus.NewDesc(NameConnections, "Client connections accepted.", nil, nil),
		openDesc:  prometheus.NewDesc(NameOpenConnections, "Client connections being proxied now.", nil, nil),
		endsDesc: prometheus.NewDesc(NameConnectionEnds, "Client connections ended, by reason: eof (both directions ended with FIN), reset (a peer reset the connection, or a read failed), send_error, send_timeout, idle_timeout, shutdown, closed, dial_error (the upstream could not be reached).",
			[]string{labelReason}, nil),
		bytesDesc: prometheus.NewDesc(NameProxiedBytes, "Bytes read from one side to be sent to the other, by direction (to_upstream, to_client).",
			[]string{labelDirection}, nil),
		heldDesc: prometheus.NewDesc(NameHeldBytes, "Bytes of read buffers held by sends the engine has not completed yet (each direction of a connection holds at most -max-inflight).",
			nil, nil),
		bufsDesc: prometheus.NewDesc(NameHeldBuffers, "Buffers the connections hold now: the proxy's own (being read into or sent) and the engine's receive pool's (being sent). An idle connection holds none, except with -recv-own-buffers (one per direction).",
			nil, nil),
	}
}

func (s *stats) ended(r endReason) { s.ends[r].Add(1) }

// snapshotBytes returns the bytes read so far for direction
// (directionIndexUp or directionIndexClient), live connections included.
func (s *stats) snapshotBytes(direction int) uint64 {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	n := s.closedBytes[direction].Load()
	for c := range s.p.conns {
		if direction == directionIndexUp {
			n += c.up.bytes.Load()
		} else {
			n += c.down.bytes.Load()
		}
	}
	return n
}

// Describe implements prometheus.Collector.
func (s *stats) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.connsDesc
	ch <- s.openDesc
	ch <- s.endsDesc
	ch <- s.bytesDesc
	ch <- s.heldDesc
	ch <- s.bufsDesc
}

// Collect implements prometheus.Collector.
func (s *stats) Collect(ch chan<- prometheus.Metric) {
	bytes := [2]uint64{s.snapshotBytes(directionIndexUp), s.snapshotBytes(directionIndexClient)}
	conns := s.p.snapshot()
	ch <- prometheus.MustNewConstMetric(s.connsDesc, prometheus.CounterValue, float64(s.accepted.Load()))
	ch <- prometheus.MustNewConstMetric(s.openDesc, prometheus.GaugeValue, float64(len(conns)))
	for r := endEOF; r < numEndReasons; r++ {
		ch <- prometheus.MustNewConstMetric(s.endsDesc, prometheus.CounterValue, float64(s.ends[r].Load()), r.String())
	}
	ch <- prometheus.MustNewConstMetric(s.bytesDesc, prometheus.CounterValue, float64(bytes[directionIndexUp]), directionToUpstream)
	ch <- prometheus.MustNewConstMetric(s.bytesDesc, prometheus.CounterValue, float64(bytes[directionIndexClient]), directionToClient)
	var held, bufs int64
	for _, c := range conns {
		held += c.up.held.Load() + c.down.held.Load()
		bufs += int64(c.up.holding.Load() + c.down.holding.Load())
	}
	ch <- prometheus.MustNewConstMetric(s.heldDesc, prometheus.GaugeValue, float64(held))
	ch <- prometheus.MustNewConstMetric(s.bufsDesc, prometheus.GaugeValue, float64(bufs))
}
