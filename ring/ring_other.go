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
