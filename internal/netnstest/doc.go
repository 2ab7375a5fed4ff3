// Package netnstest builds small networks of "hosts" on this machine for
// tests that need a real network path rather than loopback: each host is
// a network namespace of its own, and the hosts are joined by a veth pair
// (two hosts) or by veth pairs to a bridge in one more namespace (three
// and more). Zero-copy sends are the reason it exists: towards loopback
// the kernel always copies, so SEND_ZC only behaves as it does in
// production (buffers held until the peer acknowledges) on such a path.
//
// # Addresses
//
// Host i of a network has 10.231.0.(i+1)/24 and fd00:231::(i+1)/64 (no
// duplicate address detection, so both are usable at once) on its link
// eth0, and lo is up. The namespaces have no other link and no default
// route: nothing sent inside them can leave them, and since every network
// has namespaces of its own, the same addresses serve every network at
// once.
//
// # Names and cleanup
//
// Namespaces are named urnt<pid>-<n>-<i> (n counts the networks of the
// process), so tests running in parallel, in one process or many, never
// collide. Pair and Hosts delete them in t.Cleanup; New returns a Net whose
// Close deletes them. Namespaces left behind by a process that died are
// deleted by the next New.
//
// # Availability
//
// Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the
// ip command of iproute2. When either is missing, or `ip netns add` is
// refused (a container without those capabilities), New returns an error
// that Is ErrUnavailable, and Pair and Hosts skip the test with its text.
//
// # Running code inside a host
//
// A namespace belongs to an OS thread, not to a goroutine. Host.Do runs a
// function on a new goroutine locked to its OS thread (runtime.LockOSThread)
// after that thread joined the host's namespace (setns(2) with
// CLONE_NEWNET). The goroutine never unlocks the thread, so when it ends
// the Go runtime terminates the thread instead of reusing it: no other
// goroutine ever runs in the namespace by accident. Goroutines that the
// function starts run on other threads, in the process's own namespace.
//
// A socket keeps the namespace it was created in. So the usual pattern is
// to create sockets inside Do (Host.Listen, Host.Dial and Host.DialWith
// do exactly that) and use them from any goroutine afterwards:
//
//	a, b := netnstest.Pair(t)
//	l, err := b.Listen("tcp", b.HostPort(0))
//	...
//	var s *socket.Socket
//	err = a.Do(func() (err error) {
//		s, err = socket.Dial("tcp", l.Addr().String(), socket.WithEngine(eng))
//		return err
//	})
//
// Listening sockets accept in their own namespace too, so Accept may run
// anywhere. Host.Command runs a program in the host (`ip netns exec`).
//
// Do reports a panic in the function by panicking again on the caller's
// goroutine, and a runtime.Goexit in it (t.Fatal, t.Skip) as ErrGoexit:
// return errors from the function instead, and fail the test outside.
package netnstest
