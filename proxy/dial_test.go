package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// An upstream given by IP or by host name (resolved at each dial) carries
// the bytes both ways.
func TestUpstreamIPAndHostName(t *testing.T) {
	echo := echoServer(t, func(c *net.TCPConn) { io.Copy(c, c) })
	_, port, _ := net.SplitHostPort(echo)
	for _, up := range []string{echo, net.JoinHostPort("localhost", port)} {
		t.Run(up, func(t *testing.T) {
			if _, err := net.LookupHost("localhost"); err != nil && up != echo {
				t.Skipf("localhost does not resolve here: %v", err)
			}
			cfg := DefaultConfig()
			cfg.Listen, cfg.Upstream = "127.0.0.1:0", up
			p := startProxy(t, cfg)
			for i := range 3 {
				c := dial(t, p)
				msg := bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				c.CloseWrite()
				got, err := io.ReadAll(c)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("conn %d: echoed %d bytes (err %v), want the %d sent", i, len(got), err, len(msg))
				}
				c.Close()
			}
		})
	}
}
