//go:build linux

package main

import (
	"fmt"
	"io"
	"math"

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/socket"
)

// allCases lists the table's cases in order.
func allCases(o options) []caseDef {
	return []caseDef{
		{"P1", "64 B, 1 TCP conn, deep pipeline", func(o options, log io.Writer) ([]row, error) {
			return pipelineCase(o, log, "P1", 64, o.depth64, 20, true)
		}},
		{"P2", "1 KiB, 1 TCP conn, deep pipeline", func(o options, log io.Writer) ([]row, error) {
			return pipelineCase(o, log, "P2", 1024, o.depth1K, 8, true)
		}},
		{"P3", "64 KiB, 1 TCP conn", p3},
		{"P4", fmt.Sprintf("%d TCP conns × 1 KiB", o.conns), p4},
		{"P5", "sync path, idle socket, 64 B", p5},
		{"P6", "steady-state allocations", p6},
		{"P7", "UDP 64 B datagrams", p7},
		{"L1", "open+close per connection at 1k and 8k live", l1},
		{"L2", "proxy under connection churn (redis GET -k 0)", l2},
		{"L3", "proxy accept storm", l3},
		{"L4", "proxy vs io.Copy proxy: redis -P 16 -c 50 (proxycmp.go)", redisCase("L4", 16, 1.1, 0.85, 0.75)},
		{"L5", "proxy vs io.Copy proxy: redis -P 1 -c 50", redisCase("L5", 1, 1.05, 0.9, 0.9)},
		{"L6", "proxy vs io.Copy proxy: iperf3", l6},
		{"L7", "proxy vs io.Copy proxy: memory per idle connection", l7},
		{"cli", "the uringsend CLI vs iperf3", cliCase},
		{"peers", "the uringsend CLI's defaults and rr vs sockperf and iperf3", peersCase},
		{"iceber", "iceber/iouring-go's own API", icebergCase},
	}
}

// pipelineCase is P1 and P2: a deep WithBatching pipeline on one
// connection against a net.Conn.Write loop and against net.Buffers
// (writev) of the batches uringsend coalesces (at most 1024 messages).
func pipelineCase(o options, log io.Writer, id string, size, depth int, target float64, writev bool) ([]row, error) {
	batch := min(depth, 1024)
	c := comparison{
		metric: msgRate,
		cand: arm{"uringsend", uringPipeline(pipelineCfg{
			conns: 1, size: size, depth: depth, batching: true, recvBuf: 256 << 10, noCoop: o.noCoop,
		})},
		bases: []baseline{{
			arm: arm{"net.Conn.Write", writeLoop(1, size, 256<<10)},
			id:  id, title: fmt.Sprintf("%s, 1 TCP conn, deep pipeline", sizeString(int64(size))),
			target: targetString(target), pass: atLeast(target),
		}},
	}
	if writev {
		c.bases = append(c.bases, baseline{
			arm: arm{fmt.Sprintf("writev ×%d", batch), writevLoop(size, batch, 256<<10)},
			id:  id + "w", title: fmt.Sprintf("%s vs net.Buffers (writev) of %d", sizeString(int64(size)), batch),
			target: "report",
		})
	}
	rows, _, err := runComparison(o, log, c)
	if err == nil {
		rows[0].Notes = append([]string{fmt.Sprintf("uringsend: WithBatching, %d Args in flight, each resent from Completed", depth)}, rows[0].Notes...)
	}
	return rows, err
}

func p3(o options, log io.Writer) ([]row, error) {
	const size = 64 << 10
	rows, _, err := runComparison(o, log, comparison{
		metric: gbitRate,
		cand: arm{"uringsend", uringPipeline(pipelineCfg{
			conns: 1, size: size, depth: o.depth64K, batching: true, recvBuf: 256 << 10,
		})},
		bases: []baseline{{
			arm: arm{"net.Conn.Write", writeLoop(1, size, 256<<10)},
			id:  "P3", title: "64 KiB, 1 TCP conn",
			target: "≥ 1.0×", pass: atLeast(1.0),
		}},
	})
	if err == nil {
		rows[0].Notes = append([]string{fmt.Sprintf("uringsend: WithBatching, %d Args in flight; zero-copy auto (off on loopback)", o.depth64K)}, rows[0].Notes...)
	}
	return rows, err
}

func p4(o options, log io.Writer) ([]row, error) {
	const size = 1024
	rows, all, err := runComparison(o, log, comparison{
		metric: msgRate,
		cand: arm{"uringsend", uringPipeline(pipelineCfg{
			conns: o.conns, size: size, depth: o.depthConn, batching: true, metrics: true, recvBuf: 16 << 10, rings: o.rings, noCoop: o.noCoop,
		})},
		bases: []baseline{{
			arm: arm{"goroutine/conn Write", writeLoop(o.conns, size, 16<<10)},
			id:  "P4", title: fmt.Sprintf("%d TCP conns × 1 KiB", o.conns),
			target: "≥ 2×", pass: atLeast(2),
		}},
	})
	if err != nil {
		return rows, err
	}
	rows[0].Notes = append([]string{fmt.Sprintf("uringsend: one engine (%d ring(s)), WithBatching, %d Args in flight per connection, metrics on", o.rings, o.depthConn)}, rows[0].Notes...)
	cand := all[0]
	per := make([]float64, len(cand))
	for i, s := range cand {
		per[i] = s.enters / s.sends
	}
	e := median(per)
	rows = append(rows, row{
		Case: "P4e", Title: "io_uring_enter calls per send", Unit: "enter/send",
		Uringsend: e, Target: "≤ 0.5", Verdict: verdict(e <= 0.5), CandRuns: per, noBase: true,
		Notes: []string{"uringsend_ring_enter_calls_total / uringsend_sends_total over each timed round, median"},
	})
	cc, bc := cpuPerMsg(all[0]), cpuPerMsg(all[1])
	rows = append(rows, row{
		Case: "P4c", Title: "process CPU per message (senders and receivers)", Unit: "ns/op",
		Uringsend: median(cc), Baseline: median(bc), BaseName: "goroutine/conn Write", Ratio: median(cc) / median(bc),
		Target: "report", Verdict: "—", CandRuns: cc, BaseRuns: bc,
		Notes: []string{"getrusage(RUSAGE_SELF) user+system time over each round / messages delivered; lower is better"},
	})
	return rows, nil
}

func p5(o options, log io.Writer) ([]row, error) {
	rows, all, err := runComparison(o, log, comparison{
		metric: nsPerOp,
		cand:   arm{"uringsend", syncSends(64, false, o.engineConfig())},
		bases: []baseline{{
			arm: arm{"unix.Write", rawWrites(64)},
			id:  "P5", title: "sync path, idle socket, 64 B (time/op)",
			target: "≤ 1.3×", pass: atMost(1.3),
		}, {
			// The epoll backend's inline attempt is a direct sendmsg(2):
			// the cost of the socket layer without io_uring.
			arm: arm{"epoll backend", syncSends(64, false, socket.EngineConfig{Backend: socket.BackendEpoll})},
			id:  "P5e", title: "sync path vs uringsend's own epoll backend (time/op)",
			target: "report",
		}},
	})
	if err != nil {
		return rows, err
	}
	cand := all[0]
	per := make([]float64, len(cand))
	for i, s := range cand {
		per[i] = float64(s.syncs) / float64(s.msgs)
	}
	rows = append(rows, row{
		Case: "P5s", Title: "sync ratio of P5 (SendAsync returned false)", Unit: "ratio",
		Uringsend: median(per), Target: "report", Verdict: "—", CandRuns: per, noBase: true,
	})
	return rows, nil
}

// p6 counts heap allocations per send in the middle of a run, for each
// way of sending that the table measures.
func p6(o options, log io.Writer) ([]row, error) {
	shapes := []arm{
		{"pipeline 64 B (P1 shape)", uringPipeline(pipelineCfg{conns: 1, size: 64, depth: o.depth64, batching: true, recvBuf: 256 << 10, probeAllocs: true})},
		{"sync 64 B (P5 shape)", syncSends(64, true, o.engineConfig())},
		{"100 conns × 1 KiB (P4 shape, metrics on)", uringPipeline(pipelineCfg{conns: 100, size: 1024, depth: o.depthConn, batching: true, metrics: true, recvBuf: 16 << 10, probeAllocs: true})},
		{"UDP 64 B pipeline with GSO (P7 shape)", udpArm(udpPipeline, 1, 64, o.udpDepth, true)},
		{"UDP 64 B one at a time (P7s shape)", udpArm(udpInline, 1, 64, 1, true)},
	}
	worst := 0.0
	var notes []string
	var runs []float64
	d := max(o.duration, 500e6)
	for _, a := range shapes {
		s, err := a.run(round{d: d})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.name, err)
		}
		if s.allocMsgs <= 0 {
			return nil, fmt.Errorf("%s: no sends in the probe's window", a.name)
		}
		per := float64(s.allocs) / float64(s.allocMsgs)
		worst = math.Max(worst, per)
		runs = append(runs, per)
		notes = append(notes, fmt.Sprintf("%s: %d allocations over %d sends", a.name, s.allocs, s.allocMsgs))
		fmt.Fprintf(log, "  %s: %.5f allocs/send\n", a.name, per)
	}
	return []row{{
		Case: "P6", Title: "steady-state allocations per send (worst shape)", Unit: "allocs/send",
		Uringsend: worst, Target: "0 (< 0.001)", Verdict: verdict(worst < 0.001), CandRuns: runs, noBase: true,
		Notes: append(notes, "runtime.MemStats.Mallocs (whole process, receivers included) over the middle half of a run"),
	}}, nil
}

// p7 sends 64 B datagrams. The uringsend arm is a pipeline: -udp-depth
// Args in flight per WithBatching socket, each resent from Completed, so
// datagrams queue on the socket and leave together in one UDP GSO
// sendmsg. P7 is one socket against a net.UDPConn.Write loop; P7m is
// -udp-sockets sockets on one engine against a goroutine per socket
// calling Write. P7s (and P7ms) is the same baseline against one
// SendAsync at a time per socket — each datagram inline, one
// io_uring_enter each, nothing to coalesce — run in the same rounds.
func p7(o options, log io.Writer) ([]row, error) {
	var rows []row
	for _, socks := range []int{1, o.udpSockets} {
		id, title := "P7", "UDP 64 B datagrams, 1 socket"
		target, pass := "≥ 1.2×", atLeast(1.2)
		base := "net.UDPConn.Write"
		if socks != 1 {
			id, title = "P7m", fmt.Sprintf("UDP 64 B datagrams, %d sockets", socks)
			target, pass = "report", nil
			base = "goroutine/socket Write"
		}
		var pipe, one, write udpTally
		r, samples, err := runComparison(o, log, comparison{
			metric: msgRate,
			cand:   arm{"uringsend", udpArmTally(udpPipeline, socks, 64, o.udpDepth, true, &pipe)},
			bases: []baseline{{
				arm: arm{base, udpArmTally(udpWrite, socks, 64, 1, false, &write)},
				id:  id, title: title, target: target, pass: pass,
			}, {
				arm: arm{"uringsend one at a time", udpArmTally(udpInline, socks, 64, 1, false, &one)},
				id:  id + "s", title: title + ", one SendAsync at a time", target: "report",
			}},
		})
		if err != nil {
			return append(rows, r...), err
		}
		// The second row compares the one-at-a-time arm with the baseline,
		// not the pipeline with it.
		r[0].Notes = append([]string{
			fmt.Sprintf("uringsend: one engine, %d Args in flight per WithBatching socket, each resent from Completed; datagrams queued on a socket leave in one UDP GSO sendmsg; the rate of every arm counts datagrams delivered: the receiver (recvmmsg) counts and checks each, and sent = received + kernel drops (RcvbufErrors) is checked", o.udpDepth),
			"uringsend: " + pipe.String(),
			base + ": " + write.String(),
		}, r[0].Notes...)
		sv, bv := values(samples[2], msgRate), values(samples[1], msgRate)
		r[1].Uringsend, r[1].CandRuns = median(sv), sv
		r[1].Baseline, r[1].BaseRuns, r[1].BaseName = median(bv), bv, base
		r[1].Ratio = r[1].Uringsend / r[1].Baseline
		r[1].Notes = []string{"uringsend: a SendAsync loop per socket without WithBatching (each datagram inline, one io_uring_enter each); " + one.String()}
		rows = append(rows, r...)
		if o.udpSockets == 1 {
			break
		}
	}
	return rows, nil
}

// targetString writes a ratio target: "≥ 20×", "≥ 1.0×".
func targetString(x float64) string {
	if x == float64(int(x)) && x >= 2 {
		return fmt.Sprintf("≥ %d×", int(x))
	}
	return fmt.Sprintf("≥ %.1f×", x)
}

// engineConfig is the io_uring engine of the cases that take no other
// settings.
func (o options) engineConfig() socket.EngineConfig {
	return socket.EngineConfig{Backend: socket.BackendIOURing, Ring: ring.Config{NoCoopTaskrun: o.noCoop}}
}
