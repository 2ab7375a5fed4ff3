package ring

// PeekAndHandle hands every CQE now in the CQ to h, in batches, and
// returns how many it handed over. The completion lock must be held.
// A harvest that leaves requests in flight wakes a reaper parked in Go, so
// that it waits for them in the kernel (a zero-copy send's notification,
// say, follows its result). A caller other than the reaper that releases
// the lock itself should prefer TryHarvest or SubmitAndHarvest: they pass
// on a Wake whose CQE the harvest consumed.
func (r *Ring) PeekAndHandle(h Handler) int {
	n := r.harvestLocked(h, r.scratch, nil)
	r.unparkForInflight()
	return n
}

// Pending returns how many published SQEs the kernel has not consumed yet;
// 0 after Close.
func (r *Ring) Pending() uint32 {
	if !r.acquire() {
		return 0
	}
	defer r.release()
	return r.pending()
}

// CancelUserData tags cancel requests whose own CQEs nobody needs: such
// CQEs are consumed by PeekBatch and never handed over.
const CancelUserData = cancelUserData
