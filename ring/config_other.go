//go:build !linux

package ring

// Config mirrors the Linux Config so portable code compiles.
type Config struct {
	Entries       uint32
	CQEntries     uint32
	NoCoopTaskrun bool
	Unrestricted  bool
	ExtraOps      []uint8

	DisableFeatures []Feature
	DisableOps      []uint8
}
