//go:build linux

package netnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` bind-mounts the namespaces it names.
const netnsDir = "/run/netns"

var (
	seq        atomic.Uint64
	reapOnce   sync.Once
	namePrefix = "urnt" + strconv.Itoa(os.Getpid()) + "-"
)

// Available returns nil if New can make namespaces here, or an error that
// Is ErrUnavailable saying why not. It makes (and deletes) one namespace.
func Available() error {
	nw, err := New(1)
	if err != nil {
		return err
	}
	return nw.Close()
}

// New makes a network of n >= 1 hosts: for n == 2 a veth pair between
// them, for n > 2 a veth pair from each to a bridge in a namespace of its
// own. Every link (lo too) is up. Close deletes it all. The error Is
// ErrUnavailable when namespaces cannot be made here.
func New(n int) (*Net, error) {
	if n < 1 || n > 250 {
		return nil, fmt.Errorf("netnstest: %d hosts: want 1 to 250", n)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: not root (euid %d)", ErrUnavailable, os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("%w: no ip command (iproute2): %v", ErrUnavailable, err)
	}
	reapOnce.Do(reapStale)
	nw := &Net{}
	id := seq.Add(1)
	for i := range n {
		name := fmt.Sprintf("%s%d-%d", namePrefix, id, i)
		if out, err := ipCmd("netns", "add", name); err != nil {
			nw.Close()
			if i == 0 {
				return nil, fmt.Errorf("%w: ip netns add %s: %v: %s", ErrUnavailable, name, err, out)
			}
			return nil, fmt.Errorf("netnstest: ip netns add %s: %v: %s", name, err, out)
		}
		nw.names = append(nw.names, name)
		nw.Hosts = append(nw.Hosts, &Host{
			Name:  name,
			Index: i,
			Addr:  netip.AddrFrom4([4]byte{10, 231, 0, byte(i + 1)}),
			Addr6: netip.AddrFrom16([16]byte{0: 0xfd, 2: 0x02, 3: 0x31, 15: byte(i + 1)}),
			Link:  "eth0",
		})
	}
	if err := nw.wire(id); err != nil {
		nw.Close()
		return nil, err
	}
	return nw, nil
}

// wire joins the hosts and brings every link up.
func (nw *Net) wire(id uint64) error {
	var cmds [][]string
	switch hs := nw.Hosts; {
	case len(hs) == 2:
		cmds = append(cmds, []string{"-n", hs[0].Name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", hs[1].Name})
	case len(hs) > 2:
		sw := fmt.Sprintf("%s%d-br", namePrefix, id)
		if out, err := ipCmd("netns", "add", sw); err != nil {
			return fmt.Errorf("netnstest: ip netns add %s: %v: %s", sw, err, out)
		}
		nw.names = append(nw.names, sw)
		cmds = append(cmds,
			[]string{"-n", sw, "link", "add", "br0", "type", "bridge"},
			[]string{"-n", sw, "link", "set", "br0", "up"},
			[]string{"-n", sw, "link", "set", "lo", "up"})
		for _, h := range hs {
			port := fmt.Sprintf("p%d", h.Index)
			cmds = append(cmds,
				[]string{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.Name},
				[]string{"-n", sw, "link", "set", port, "master", "br0"},
				[]string{"-n", sw, "link", "set", port, "up"})
		}
	}
	for _, h := range nw.Hosts {
		cmds = append(cmds, []string{"-n", h.Name, "link", "set", "lo", "up"})
		if len(nw.Hosts) > 1 {
			cmds = append(cmds,
				[]string{"-n", h.Name, "addr", "add", h.Addr.String() + "/24", "dev", h.Link},
				[]string{"-n", h.Name, "addr", "add", h.Addr6.String() + "/64", "dev", h.Link, "nodad"},
				[]string{"-n", h.Name, "link", "set", h.Link, "up"})
		}
	}
	for i, c := range cmds {
		if out, err := ipCmd(c...); err != nil {
			if i == 0 { // no veth or bridge in this kernel
				return fmt.Errorf("%w: ip %s: %v: %s", ErrUnavailable, strings.Join(c, " "), err, out)
			}
			return fmt.Errorf("netnstest: ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

// Close deletes the net's namespaces (and with them their links and any
// socket's route out). Sockets made in them keep working on their own
// but can reach nothing any more. A second Close does nothing.
func (nw *Net) Close() error {
	if nw.closed {
		return nil
	}
	nw.closed = true
	var errs []error
	for _, name := range nw.names {
		if out, err := ipCmd("netns", "delete", name); err != nil {
			errs = append(errs, fmt.Errorf("ip netns delete %s: %v: %s", name, err, out))
		}
	}
	return errors.Join(errs...)
}

// Do runs fn in the host's namespace: on a new goroutine locked to an OS
// thread that joined the namespace, a thread the runtime discards when
// fn returns. It returns fn's error, or the error of joining the
// namespace. A panic in fn is raised again on the caller's goroutine; a
// runtime.Goexit in fn (t.Fatal) returns ErrGoexit.
func (h *Host) Do(fn func() error) error {
	type result struct {
		err      error
		panicked bool
		p        any
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		returned := false
		defer func() {
			if returned {
				return
			}
			if p := recover(); p != nil {
				done <- result{panicked: true, p: p}
				return
			}
			done <- result{err: ErrGoexit}
		}()
		err := setns(h.Name)
		if err == nil {
			err = fn()
		}
		returned = true
		done <- result{err: err}
	}()
	r := <-done
	if r.panicked {
		panic(r.p)
	}
	return r.err
}

// setns moves the calling thread into the named namespace.
func setns(name string) error {
	fd, err := unix.Open(filepath.Join(netnsDir, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netnstest: open namespace %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netnstest: setns %s: %w", name, err)
	}
	return nil
}

// Listen is net.Listen made in the host's namespace.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	return h.ListenConfig(net.ListenConfig{}, network, address)
}

// ListenConfig is lc.Listen made in the host's namespace.
func (h *Host) ListenConfig(lc net.ListenConfig, network, address string) (l net.Listener, err error) {
	err = h.Do(func() error {
		l, err = lc.Listen(context.Background(), network, address)
		return err
	})
	return l, err
}

// Dial is net.Dial made in the host's namespace.
func (h *Host) Dial(network, address string) (net.Conn, error) {
	return h.DialWith(&net.Dialer{}, network, address)
}

// DialWith is d.Dial made in the host's namespace.
func (h *Host) DialWith(d *net.Dialer, network, address string) (c net.Conn, err error) {
	err = h.Do(func() error {
		c, err = d.Dial(network, address)
		return err
	})
	return c, err
}

// Command returns a command that runs name with args in the host's
// namespace (`ip netns exec`).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// CommandContext is Command with a context that kills it.
func (h *Host) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Exists reports whether the host's namespace still exists.
func (h *Host) Exists() bool {
	_, err := os.Stat(filepath.Join(netnsDir, h.Name))
	return err == nil
}

func ipCmd(args ...string) ([]byte, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return []byte(strings.TrimSpace(string(out))), err
}

// reapStale deletes namespaces of this package left by processes that
// have died (killed tests never ran their cleanups).
func reapStale() {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "urnt")
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			ipCmd("netns", "delete", e.Name())
		}
	}
}
