package loadgen

import (
	"time"

	"github.com/uringsend/uringsend/socket"
)

// cost is what the process has spent so far: CPU time (getrusage) and
// the engine's system-call counters (Engine.Stats, which allocates
// nothing: a run reads it at its start, every interval, at the end of
// -omit and at its end).
type cost struct {
	user, sys time.Duration
	eng       socket.EngineStats
}

// readCost reads the process's cost so far.
func (r *runner) readCost() cost {
	var c cost
	c.user, c.sys = cpuTimes()
	c.eng = r.eng.Stats()
	return c
}

// since is the Cost from "from" to c, its ratios to messages and bytes
// set.
func (c *cost) since(from *cost, messages, bytes uint64, includesSink bool) *Cost {
	e, f := &c.eng, &from.eng
	k := &Cost{
		UserSeconds:   (c.user - from.user).Seconds(),
		SystemSeconds: (c.sys - from.sys).Seconds(),
		Enters:        e.Enters - f.Enters,
		SQEs:          e.Submitted - f.Submitted,
		Waits:         e.Waits - f.Waits,
		Parks:         e.Parks - f.Parks,
		SQFull:        e.SQFull - f.SQFull,
		SendCalls:     e.SendCalls - f.SendCalls,
		RecvCalls:     e.RecvCalls - f.RecvCalls,
		WouldBlock:    e.WouldBlock - f.WouldBlock,
		IncludesSink:  includesSink,
	}
	k.setRatios(messages, bytes)
	return k
}

// Cost is what a run cost its process, between the start of sending (or
// the end of -omit) and the end of the drain (in an IntervalReport: in
// that interval). With an embedded sink the sink's CPU time is in it too,
// not its system calls: the sink reads with Go's net package, not with
// the engine.
//
// The system calls are the engine's (Engine.Stats). On io_uring: its
// io_uring_enter calls, the SQEs they submitted, how many of them
// waited for a completion, how often a reaper parked in Go instead, and
// how often a submitter found the submission queue full. On epoll (and
// for an io_uring engine's AF_UNIX datagrams): its sendmsg(2)/sendto(2)
// and recvfrom(2) calls and how many of them answered EAGAIN — the
// socket was full (or, receiving, empty) and the engine waited for
// Go's netpoller. Per message means per successful message: for rr, per
// request whose echo came back.
type Cost struct {
	UserSeconds      float64 `json:"user_seconds"`
	SystemSeconds    float64 `json:"system_seconds"`
	CPUPerMessage    float64 `json:"cpu_seconds_per_message"`
	CPUPerGB         float64 `json:"cpu_seconds_per_gb"`
	EntersPerMessage float64 `json:"io_uring_enter_per_message"` // 0 on epoll
	SQEsPerEnter     float64 `json:"sqes_per_enter"`
	Enters           uint64  `json:"io_uring_enter_calls"`
	SQEs             uint64  `json:"sqes_submitted"`
	Waits            uint64  `json:"io_uring_waits"` // enters that waited for a completion
	Parks            uint64  `json:"reaper_parks"`   // a reaper slept in Go, with nothing in the kernel
	SQFull           uint64  `json:"sq_full"`        // a submitter found the SQ full
	// The engine's direct system calls: all of epoll's.
	SendCalls           uint64  `json:"send_calls"`  // sendmsg(2) and sendto(2)
	RecvCalls           uint64  `json:"recv_calls"`  // recvfrom(2)
	WouldBlock          uint64  `json:"would_block"` // of those, EAGAIN answers
	SendCallsPerMessage float64 `json:"send_calls_per_message"`
	RecvCallsPerMessage float64 `json:"recv_calls_per_message"`
	WouldBlockRatio     float64 `json:"would_block_ratio"` // would_block / (send_calls + recv_calls)
	// IncludesSink: the embedded sink ran in the same process.
	IncludesSink bool `json:"includes_sink"`
}

// setCost fills rep.Cost from the cost at the start (or at the end of
// -omit) to end.
func (rep *Report) setCost(r *runner, end *cost, includesSink bool) {
	from := &r.cost0
	if r.omitAt > 0 {
		from = &r.omitCost
	}
	rep.Cost = end.since(from, rep.Messages, rep.Bytes, includesSink)
}

// setRatios derives the per-message, per-GB, per-enter and per-call
// figures from c's totals and what they bought.
func (c *Cost) setRatios(messages, bytes uint64) {
	cpu := c.UserSeconds + c.SystemSeconds
	if messages > 0 {
		m := float64(messages)
		c.CPUPerMessage = cpu / m
		c.EntersPerMessage = float64(c.Enters) / m
		c.SendCallsPerMessage = float64(c.SendCalls) / m
		c.RecvCallsPerMessage = float64(c.RecvCalls) / m
	}
	if bytes > 0 {
		c.CPUPerGB = cpu / (float64(bytes) / 1e9)
	}
	if c.Enters > 0 {
		c.SQEsPerEnter = float64(c.SQEs) / float64(c.Enters)
	}
	if calls := c.SendCalls + c.RecvCalls; calls > 0 {
		c.WouldBlockRatio = float64(c.WouldBlock) / float64(calls)
	}
}

// add adds o's totals to c's (the ratios are to be set again).
func (c *Cost) add(o *Cost) {
	c.UserSeconds += o.UserSeconds
	c.SystemSeconds += o.SystemSeconds
	c.Enters += o.Enters
	c.SQEs += o.SQEs
	c.Waits += o.Waits
	c.Parks += o.Parks
	c.SQFull += o.SQFull
	c.SendCalls += o.SendCalls
	c.RecvCalls += o.RecvCalls
	c.WouldBlock += o.WouldBlock
	c.IncludesSink = c.IncludesSink || o.IncludesSink
}
