//go:build linux && iceber

// The iceber case compares uringsend with the root package of
// github.com/iceber/iouring-go, which needs a //go:linkname that Go >= 1.23
// refuses at link time unless linked with -ldflags=-checklinkname=0:
//
//	go run -tags iceber -ldflags=-checklinkname=0 ./bench -cases iceber

package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	iouring "github.com/iceber/iouring-go"
	"golang.org/x/sys/unix"
)

// iceberBuilt reports whether the iceber case is compiled in.
const iceberBuilt = true

func icebergCase(o options, log io.Writer) ([]row, error) {
	var rows []row
	pipe, _, err := runComparison(o, log, comparison{
		metric: msgRate,
		cand: arm{"uringsend", uringPipeline(pipelineCfg{
			conns: 1, size: 64, depth: 1024, batching: true, recvBuf: 256 << 10,
		})},
		bases: []baseline{{
			arm: arm{"iouring-go", icebergPipeline(64, 1024)},
			id:  "I1", title: "64 B, 1 TCP conn, 1024 in flight, vs iceber/iouring-go",
			target: "report",
		}},
	})
	rows = append(rows, pipe...)
	if err != nil {
		return rows, err
	}
	one, _, err := runComparison(o, log, comparison{
		metric: nsPerOp,
		cand:   arm{"uringsend", syncSends(64, false, o.engineConfig())},
		bases: []baseline{{
			arm: arm{"iouring-go", icebergPipeline(64, 1)},
			id:  "I2", title: "64 B, one send at a time (time/op), vs iceber/iouring-go",
			target: "report",
		}},
	})
	return append(rows, one...), err
}

// icebergPipeline keeps depth IORING_OP_SENDs in flight on one
// connection with iouring-go's channel API: results are read from the
// channel, and the sends they free are submitted again in one batch.
// iouring-go does not order sends on a socket, so the verification round
// tells whether the stream arrived in order.
func icebergPipeline(size, depth int) func(round) (sample, error) {
	return func(r round) (sample, error) {
		c, recv, _, fd, err := fdPair(r.verify)
		if err != nil {
			return sample{}, err
		}
		iour, err := iouring.New(uint(max(depth, 64)), iouring.WithCQSize(uint32(4*max(depth, 64))))
		if err != nil {
			c.Close()
			return sample{}, err
		}
		defer iour.Close()
		bufs := make([][]byte, depth)
		for i := range bufs {
			bufs[i] = make([]byte, size)
		}
		sh := r.senderHash(size)
		ch := make(chan iouring.Result, depth)
		reqs := make([]iouring.PrepRequest, 0, depth)
		prep := func(i int) {
			if sh != nil {
				sh.fill(bufs[i])
			}
			reqs = append(reqs, iouring.Send(fd, bufs[i], unix.MSG_NOSIGNAL|unix.MSG_WAITALL).WithInfo(i))
		}
		for i := range depth {
			prep(i)
		}
		deadline := time.Now().Add(r.d)
		t0 := time.Now()
		if _, err := iour.SubmitRequests(reqs, ch); err != nil {
			c.Close()
			return sample{}, err
		}
		inflight, n := depth, int64(0)
		stopping := false
		for inflight > 0 {
			res := <-ch
			inflight--
			reqs = reqs[:0]
			for {
				got, rerr := res.(iouring.Request).GetRes() // Send has no resolver: res is the CQE's
				if rerr == nil && got < 0 {
					rerr = unix.Errno(-got)
				}
				if rerr == nil && got != size {
					rerr = fmt.Errorf("short send: %d of %d bytes", got, size)
				}
				if rerr != nil {
					err = rerr
					stopping = true
				} else {
					n++
				}
				if !stopping && n&255 == 0 && time.Now().After(deadline) {
					stopping = true
				}
				if !stopping {
					prep(res.GetRequestInfo().(int))
				}
				select {
				case res = <-ch:
					inflight--
					continue
				default:
				}
				break
			}
			if len(reqs) > 0 {
				if _, serr := iour.SubmitRequests(reqs, ch); serr != nil {
					err = errors.Join(err, serr)
					stopping = true
				} else {
					inflight += len(reqs)
				}
			}
		}
		smp := sample{msgs: n, bytes: n * int64(size), elapsed: time.Since(t0)}
		last, err := smp.finishOne(c, recv, sh, err)
		smp.delivered(t0, last)
		return smp, err
	}
}
