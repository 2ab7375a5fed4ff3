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
