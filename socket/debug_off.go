//go:build linux && !uringsend_debug

package socket

// debugChecks: see debug_on.go (build tag uringsend_debug).
const debugChecks = false
