package loadgen

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// StartAtEnv is where ParseRunFlags looks for -start-at when the flag is
// not given: a Kubernetes Job sets it for every pod (docker/k8s).
const StartAtEnv = "URINGSEND_START_AT"

// StartLateAfter is the start lag above which a run's report flags a
// late start: far above what the final nanosleep of the wait costs (tens
// of microseconds), well below an interval of any report.
const StartLateAfter = 10 * time.Millisecond

// TimeFormat is the form of the report's times (started_at, ended_at,
// start_at): RFC 3339 in UTC with all nine digits of the nanoseconds.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// ParseStartAt parses the value of -start-at: an RFC 3339 time
// ("2026-12-03T11:10:00Z", "2026-12-03T12:10:00.5+01:00") or unix seconds
// ("1796296200", "1796296200.25").
func ParseStartAt(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if sec, frac, ok := unixSeconds(s); ok {
		return time.Unix(sec, frac).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-12-03T11:10:00Z) nor unix seconds (1796296200)", s)
	}
	return t, nil
}

// unixSeconds parses "seconds[.fraction]", exactly to the nanosecond.
func unixSeconds(s string) (sec, nsec int64, ok bool) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || (hasFrac && (frac == "" || len(frac) > 9 || strings.Trim(frac, "0123456789") != "")) {
		return 0, 0, false
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || sec > 1<<40 { // past year 36000: a typo, not a time
		return 0, 0, false
	}
	if hasFrac {
		nsec, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return sec, nsec, true
}

// startAtFlag is -start-at.
type startAtFlag struct{ t *time.Time }

func (f startAtFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.UTC().Format(time.RFC3339Nano)
}

func (f startAtFlag) Set(s string) error {
	t, err := ParseStartAt(s)
	if err != nil {
		return err
	}
	*f.t = t
	return nil
}

// waitStart waits until the wall clock reads at, or until a signal
// arrives on sig (then it returns false). Most of the wait is on a
// runtime timer, which a signal cuts short; the last few milliseconds in
// nanosleep on a thread with 1 ns timer slack, which wakes within tens
// of microseconds where a runtime timer may be a millisecond late.
func waitStart(at time.Time, sig <-chan os.Signal) bool {
	// at has no monotonic reading, so time.Until reads the wall clock:
	// the one that generators on other machines share. Each round
	// re-reads it, in case it was stepped meanwhile.
	for {
		d := time.Until(at) - precise
		if d <= 0 {
			break
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-sig:
			t.Stop()
			return false
		}
	}
	done := make(chan struct{})
	go func() {
		punctualThread() // the thread ends with this goroutine
		if d := time.Until(at); d > 0 {
			shortSleep(d)
		}
		close(done)
	}()
	<-done
	return true
}
