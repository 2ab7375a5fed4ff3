//go:build !linux

package ring

// New returns ErrNotSupported on platforms other than Linux.
func New(cfg Config) (*Ring, error) {
	return nil, &FeatureError{Name: "io_uring", Err: errorf("only on linux")}
}

// Ring is not available on this platform.
type Ring struct{}

// Close does nothing on this platform.
func (r *Ring) Close() error { return nil }

// Has reports false on this platform.
func (r *Ring) Has(f Feature) bool { return false }

// Require returns a *FeatureError on this platform.
func (r *Ring) Require(f Feature) error { return featureError(f, false) }

// BufRing is not available on this platform.
type BufRing struct{}

// RegisterBufRing returns a *FeatureError on this platform.
func (r *Ring) RegisterBufRing(bgid uint16, entries, bufSize int) (*BufRing, error) {
	return nil, featureError(FeatureBufRing, false)
}

// Buf returns nil on this platform.
func (br *BufRing) Buf(bid uint16, n int) []byte { return nil }

// Recycle does nothing on this platform.
func (br *BufRing) Recycle(bid uint16) {}

// RecycleBatch does nothing on this platform.
func (br *BufRing) RecycleBatch(bids []uint16) {}

// Close does nothing on this platform.
func (br *BufRing) Close() error { return nil }
