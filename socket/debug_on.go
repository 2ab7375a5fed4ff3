//go:build linux && uringsend_debug

package socket

// debugChecks turns invariant violations that production builds only count
// (a CQE that matches no request) into panics.
const debugChecks = true
