package socket

import (
	"testing"

	"go.uber.org/goleak"
)

// Every engine a test starts is closed by it: no reaper or writer
// goroutine may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
