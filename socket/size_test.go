//go:build linux

package socket

import (
	"testing"
	"unsafe"
)

// A Socket is most of what an idle connection costs a proxy (two per
// connection; uringproxy's idle memory is a benchmarked target, L7): it
// must stay in the runtime's 768-byte size class. State that only some
// sockets use (WithMaxInflightBytes' backpressure) hangs off a pointer.
func TestSocketSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Socket{}); n > 768 {
		t.Fatalf("Socket is %d bytes: past the 768-byte size class (the next is 896)", n)
	}
}
