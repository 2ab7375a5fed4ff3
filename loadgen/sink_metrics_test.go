package loadgen

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sink -metrics-addr serves the sink's counters for Prometheus.
func TestSinkMetrics(t *testing.T) {
	pr, pw := io.Pipe()
	sig := make(chan os.Signal, 1)
	done := make(chan error, 1)
	cfg, err := ParseSinkFlags(strings.Fields("-listen tcp://127.0.0.1:0 -metrics-addr 127.0.0.1:0 -interval 0"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := RunSink(cfg, sig, pw)
		pw.Close()
		done <- err
	}()
	var listen, url string
	sc := bufio.NewScanner(pr)
	for (listen == "" || url == "") && sc.Scan() {
		line := sc.Text()
		if m := regexp.MustCompile(`listening on tcp://(\S+)`).FindStringSubmatch(line); m != nil {
			listen = m[1]
		}
		if m := regexp.MustCompile(`metrics at (\S+)`).FindStringSubmatch(line); m != nil {
			url = m[1]
		}
	}
	go io.Copy(io.Discard, pr)
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 1000))
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "uringsend_sink_received_bytes_total 1000") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no uringsend_sink_received_bytes_total 1000 in:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sig <- os.Interrupt
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
