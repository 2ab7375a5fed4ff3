//go:build linux

package ring

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/uringsend/uringsend/internal/seccomptest"
)

func TestFeatureError(t *testing.T) {
	err := error(&FeatureError{Name: "IORING_OP_SEND_ZC", MinVersion: "6.0", Err: syscall.EINVAL})
	if !errors.Is(err, ErrNotSupported) {
		t.Error("FeatureError is not ErrNotSupported")
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Error("FeatureError does not unwrap to its errno")
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != syscall.EINVAL {
		t.Errorf("errors.As errno = %v", errno)
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, syscall.EPERM) {
		t.Error("FeatureError Is an unrelated error")
	}
	msg := err.Error()
	for _, want := range []string{"IORING_OP_SEND_ZC", "requires >= 6.0", "not supported", syscall.EINVAL.Error()} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	// Wrapped further, it still answers.
	wrapped := fmt.Errorf("engine: %w", err)
	var fe *FeatureError
	if !errors.Is(wrapped, ErrNotSupported) || !errors.As(wrapped, &fe) || fe.Name != "IORING_OP_SEND_ZC" {
		t.Errorf("wrapped FeatureError lost: %v", wrapped)
	}
}

func TestFeatureErrorMessages(t *testing.T) {
	for _, c := range []struct {
		e    FeatureError
		want string
	}{
		{FeatureError{Name: "io_uring", MinVersion: "5.1", Err: syscall.ENOSYS}, "io_uring (requires >= 5.1) not supported: " + syscall.ENOSYS.Error()},
		{FeatureError{Name: "IORING_FEAT_NODROP", MinVersion: "5.5"}, "IORING_FEAT_NODROP (requires >= 5.5) not supported"},
		{FeatureError{Name: "io_uring (refused)", Err: syscall.EPERM}, "io_uring (refused) not supported: " + syscall.EPERM.Error()},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
	if errors.Unwrap(&FeatureError{Name: "x"}) != nil {
		t.Error("Unwrap of a FeatureError without cause is not nil")
	}
}

// setupError turns each refusal of io_uring_setup into the right error.
func TestSetupErrors(t *testing.T) {
	for _, c := range []struct {
		errno       syscall.Errno
		unsupported bool
		min         string
	}{
		{syscall.ENOSYS, true, "5.1"},
		{syscall.EPERM, true, ""},
		{syscall.ENOMEM, true, ""},
		{syscall.EINVAL, true, "5.6"},
		{syscall.EMFILE, false, ""},
	} {
		err := setupError(c.errno)
		if errors.Is(err, ErrNotSupported) != c.unsupported {
			t.Errorf("%v: Is(ErrNotSupported) = %v, want %v (%v)", c.errno, !c.unsupported, c.unsupported, err)
		}
		if !errors.Is(err, c.errno) {
			t.Errorf("%v: error %v does not unwrap to it", c.errno, err)
		}
		var fe *FeatureError
		if errors.As(err, &fe) && fe.MinVersion != c.min {
			t.Errorf("%v: MinVersion %q, want %q", c.errno, fe.MinVersion, c.min)
		}
	}
}

// The real refusal path: a seccomp filter like a container runtime's makes
// io_uring_setup fail with EPERM, and New says ErrNotSupported with the
// EPERM inside. Runs in a child process (the filter cannot be removed).
func TestNewRefusedBySeccomp(t *testing.T) {
	if !seccomptest.InChild() {
		seccomptest.RunChild(t, "TestNewRefusedBySeccomp")
		return
	}
	if err := seccomptest.DenyIOUring(); err != nil {
		t.Skipf("cannot install a seccomp filter here: %v", err)
	}
	r, err := New(Config{})
	if err == nil {
		r.Close()
		t.Fatal("New succeeded with io_uring_setup refused")
	}
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, syscall.EPERM) {
		t.Fatalf("New: %v: want ErrNotSupported wrapping EPERM", err)
	}
	var fe *FeatureError
	if !errors.As(err, &fe) || !strings.Contains(fe.Name, "io_uring") {
		t.Fatalf("New: %#v: want a *FeatureError naming io_uring", err)
	}
	t.Logf("New: %v", err)
}
