package proxytest

import (
	"net"

	"github.com/uringsend/uringsend/proxy/internal/copyproxy"
)

// Proxy is a running proxy: where it accepts, and how to stop it.
type Proxy interface {
	Addr() net.Addr
	Close() error
}

// CopyProxy starts the baseline the proxy is measured against — the plain
// Go io.Copy proxy of proxy/internal/copyproxy, two goroutines per
// connection — from addr to upstream, for the comparisons outside this
// package tree (the bench command's churn cases). Close stops it.
func CopyProxy(addr, upstream string) (Proxy, error) {
	return copyproxy.Listen(addr, upstream)
}
