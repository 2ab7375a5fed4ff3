//go:build !linux

package netnstest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
)

// Available reports that namespaces are Linux only.
func Available() error { return fmt.Errorf("%w: Linux only (GOOS %s)", ErrUnavailable, runtime.GOOS) }

// New returns an error that Is ErrUnavailable: namespaces are Linux only.
func New(n int) (*Net, error) { return nil, Available() }

// Close does nothing.
func (nw *Net) Close() error { return nil }

// Do returns an error that Is ErrUnavailable.
func (h *Host) Do(fn func() error) error { return Available() }

// Listen returns an error that Is ErrUnavailable.
func (h *Host) Listen(network, address string) (net.Listener, error) { return nil, Available() }

// ListenConfig returns an error that Is ErrUnavailable.
func (h *Host) ListenConfig(lc net.ListenConfig, network, address string) (net.Listener, error) {
	return nil, Available()
}

// Dial returns an error that Is ErrUnavailable.
func (h *Host) Dial(network, address string) (net.Conn, error) { return nil, Available() }

// DialWith returns an error that Is ErrUnavailable.
func (h *Host) DialWith(d *net.Dialer, network, address string) (net.Conn, error) {
	return nil, Available()
}

// Command returns a command that fails: namespaces are Linux only.
func (h *Host) Command(name string, args ...string) *exec.Cmd { return exec.Command("false") }

// CommandContext returns a command that fails: namespaces are Linux only.
func (h *Host) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "false")
}

// Exists reports false.
func (h *Host) Exists() bool { return false }
