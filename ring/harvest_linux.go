package ring

// PeekAndHandle hands every CQE now in the CQ to h, in batches, and
// returns how many it handed over. The completion lock must be held.
func (r *Ring) PeekAndHandle(h Handler) int { return r.harvestLocked(h, r.scratch, nil) }

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
