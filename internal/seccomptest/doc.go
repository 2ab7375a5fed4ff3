// Package seccomptest lets tests see how code behaves where io_uring is
// refused, the way a container runtime's seccomp profile refuses it: it
// installs a seccomp filter that makes io_uring_setup, io_uring_enter and
// io_uring_register fail with EPERM.
//
// A filter can never be removed, so it must only be installed in a child
// process that exists for that purpose. The usual pattern re-executes the
// test binary, running just one test, with an environment variable set:
//
//	func TestFallbackWhenIOUringRefused(t *testing.T) {
//		if seccomptest.InChild() {
//			if err := seccomptest.DenyIOUring(); err != nil {
//				t.Fatal(err)
//			}
//			// ... io_uring_setup now fails with EPERM in this process ...
//			return
//		}
//		seccomptest.RunChild(t, "TestFallbackWhenIOUringRefused")
//	}
//
// DenyIOUring applies the filter to every thread of the process at once
// (SECCOMP_FILTER_FLAG_TSYNC), so the caller need not lock an OS thread;
// it should run before anything in the child creates a ring. Rings created
// before the call keep working for io_uring_enter only if they never call
// it again: do not mix.
package seccomptest
