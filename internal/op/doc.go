// Package op is the engine's half of a send or a receive: what package
// socket does with a sendop.Args between SendAsync (or ReceiveAsync) and
// its completion. Users never see it; sendop.Args holds an Op as its first
// field, and the engine converts between the two in place.
//
// # Protocol
//
// Claim marks the op in use (one CAS on its state word, drawn in
// state.go), validates what the caller set — a Buffer or a BufferList,
// never both; MSG_* flags an engine can honour — and takes a snapshot of
// it, so that a SetBuffer during the send cannot pull memory from under
// the kernel. Begin resets the result and pins the memory the kernel reads
// after the submitting call returns: through the socket's PinCache, which
// keeps memory a socket sends from again pinned across sends (a
// runtime.Pinner's Pin and Unpin take a span lock each) and lets go of it
// when the socket drains, idles or leaves its engine. From then on the op
// is the engine's: queued (MarkQueued) or submitted inline (MarkInline).
//
// Prep and PrepZC fill an SQE with what is left to send (at most IOVMax
// iovecs, from the current segment and offset); SendmsgArgs gives the same
// to a plain sendmsg(2). Advance records a result and says whether a short
// stream send must go on. Complete records the final error, and its
// answer settles the one race of the contract: either the caller, in
// Decide, learns the op finished inline (SendAsync returns false), or the
// engine raises Completed after Free — never both, never neither.
//
// Queue is the intrusive per-socket FIFO of ops: no allocation per send.
package op
