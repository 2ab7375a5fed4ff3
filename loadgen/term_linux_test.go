package loadgen

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

func TestStatusOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
	if !isTerminal(slave) {
		t.Fatal("a pty slave is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []io.Writer{f, &bytes.Buffer{}, os.NewFile(^uintptr(0), "bad")} {
		if isTerminal(w) {
			t.Errorf("%T is taken for a terminal", w)
		}
	}

	s := newStatusWriter(slave)
	s.status("one")
	s.status("two")
	s.notef("note %d", 1)
	s.status("three")
	s.clear()
	slave.Close()
	out, _ := io.ReadAll(master)                                            // EIO once the slave is closed and drained
	want := "\r\x1b[Kone\r\x1b[Ktwo\r\x1b[Knote 1\r\n\r\x1b[Kthree\r\x1b[K" // the tty maps \n to \r\n
	if string(out) != want {
		t.Errorf("terminal got %q, want %q", out, want)
	}

	var b bytes.Buffer
	s = newStatusWriter(&b)
	s.status("one")
	s.notef("note")
	s.status("two")
	s.clear()
	if b.String() != "one\nnote\ntwo\n" {
		t.Errorf("non-terminal got %q", b.String())
	}
}
