package loadgen

import (
	"time"

	"github.com/uringsend/uringsend/metrics"
)

// cost is what the process has spent so far: CPU time (getrusage) and,
// on io_uring, the engine's io_uring_enter calls and the SQEs they
// submitted (the ring counters of the run's metrics registry).
type cost struct {
	user, sys    time.Duration
	enters, sqes uint64
}

// readCost reads the process's cost so far; the ring counters only with
// rings (gathering allocates: a run reads them at its end, and at the end
// of -omit).
func (r *runner) readCost(rings bool) cost {
	var c cost
	c.user, c.sys = cpuTimes()
	if !rings {
		return c
	}
	mfs, err := r.reg.Gather()
	if err != nil {
		return c
	}
	for _, mf := range mfs {
		var dst *uint64
		switch mf.GetName() {
		case metrics.NameRingEnterCalls:
			dst = &c.enters
		case metrics.NameRingSubmitted:
			dst = &c.sqes
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			*dst += uint64(m.GetCounter().GetValue())
		}
	}
	return c
}

// Cost is what a run cost its process, between the start of sending (or
// the end of -omit) and the end of the drain. With an embedded sink the
// sink's CPU time is in it too.
type Cost struct {
	UserSeconds      float64 `json:"user_seconds"`
	SystemSeconds    float64 `json:"system_seconds"`
	CPUPerMessage    float64 `json:"cpu_seconds_per_message"`
	CPUPerGB         float64 `json:"cpu_seconds_per_gb"`
	EntersPerMessage float64 `json:"io_uring_enter_per_message"` // 0 on epoll
	SQEsPerEnter     float64 `json:"sqes_per_enter"`
	Enters           uint64  `json:"io_uring_enter_calls"`
	SQEs             uint64  `json:"sqes_submitted"`
	// IncludesSink: the embedded sink ran in the same process.
	IncludesSink bool `json:"includes_sink"`
}

// setCost fills rep.Cost from the cost at the start (or at the end of
// -omit) to end.
func (rep *Report) setCost(r *runner, end cost) {
	from := r.cost0
	if r.omitAt > 0 {
		from = r.omitCost
	}
	c := &Cost{
		UserSeconds:   (end.user - from.user).Seconds(),
		SystemSeconds: (end.sys - from.sys).Seconds(),
		Enters:        end.enters - from.enters,
		SQEs:          end.sqes - from.sqes,
	}
	c.setRatios(rep.Messages, rep.Bytes)
	rep.Cost = c
}

// setRatios derives the per-message, per-GB and per-enter figures from
// c's totals and what they bought.
func (c *Cost) setRatios(messages, bytes uint64) {
	cpu := c.UserSeconds + c.SystemSeconds
	if messages > 0 {
		c.CPUPerMessage = cpu / float64(messages)
		c.EntersPerMessage = float64(c.Enters) / float64(messages)
	}
	if bytes > 0 {
		c.CPUPerGB = cpu / (float64(bytes) / 1e9)
	}
	if c.Enters > 0 {
		c.SQEsPerEnter = float64(c.SQEs) / float64(c.Enters)
	}
}
