package metrics

// Batched recording, for a reaper that completes many sends at once: it
// observes each send's latency, but counts the sends, their bytes and the
// in-flight change once per batch, so a batch of n sends costs n histogram
// observations and a handful of atomic adds.

// ObserveLatency records one send's duration in
// uringsend_send_duration_seconds without counting the send; count it with
// AddSends.
func (m *Metrics) ObserveLatency(sync bool, seconds float64) {
	if m == nil {
		return
	}
	m.observe(completionIndex(sync), seconds)
}

// AddSends counts n sends with one result, and their bytes (counted only
// for "Success"), as n calls of ObserveSend would, without the latencies.
func (m *Metrics) AddSends(sync bool, result string, n, bytes int) {
	if m == nil || n <= 0 {
		return
	}
	m.resultCounters(result)[completionIndex(sync)].Add(float64(n))
	if result == resultSuccess && bytes > 0 {
		m.sentBytes.Add(float64(bytes))
	}
}
