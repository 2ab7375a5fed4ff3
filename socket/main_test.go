package socket

import (
	"testing"

	"go.uber.org/goleak"
)

// Every engine a test starts is closed by it: no reaper or writer
// goroutine may outlive the tests. The examples send on the
// DefaultEngine, which is never closed: it starts first, and its
// goroutines are the only ones allowed to stay.
func TestMain(m *testing.M) {
	DefaultEngine()
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}
