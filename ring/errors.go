package ring

import (
	"errors"
	"fmt"
)

// ErrNotSupported is returned, wrapped in a *FeatureError, when the kernel or
// the environment cannot provide io_uring or one of its features: the kernel
// is too old (ENOSYS, EINVAL on unknown flags), io_uring is switched off by
// sysctl kernel.io_uring_disabled or refused by a seccomp filter (EPERM), or
// the process may not lock the memory it needs (ENOMEM). Callers that can run
// without io_uring test for it with errors.Is and fall back.
var ErrNotSupported = errors.New("not supported")

// ErrClosed is returned by operations on a Ring that has been closed or is
// being closed.
var ErrClosed = errors.New("ring: closed")

// ErrSQFull is returned by GetSQE and GetSQEPair when the submission
// queue stayed full for the whole retry budget because the kernel would
// not take more entries (it answered EBUSY or EAGAIN while the completion
// queue drained).
var ErrSQFull = errors.New("ring: submission queue full")

// ErrCQELost is returned when the kernel reports (EBADR) that it dropped
// completions because it could not allocate overflow entries. Nothing can
// restore them; the ring is no longer trustworthy, and Ring.Lost says so
// from then on.
var ErrCQELost = errors.New("ring: kernel dropped completions (EBADR)")

// FeatureError names a missing feature, the minimum kernel that has it and
// the underlying cause. It Is ErrNotSupported.
type FeatureError struct {
	Name       string // "io_uring", "IORING_OP_SEND_ZC", ...
	MinVersion string // "5.6"; empty when the feature is refused, not missing
	Err        error  // the errno or condition behind it, may be nil
}

func (e *FeatureError) Error() string {
	s := e.Name
	if e.MinVersion != "" {
		s += " (requires >= " + e.MinVersion + ")"
	}
	s += " not supported"
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *FeatureError) Is(target error) bool { return target == ErrNotSupported }

// Unwrap returns the cause so errors.Is(err, syscall.EPERM) works too.
func (e *FeatureError) Unwrap() error { return e.Err }

func errorf(format string, args ...any) error { return fmt.Errorf("ring: "+format, args...) }
