// Package units holds the typed flag values the commands share: Size, a
// number of bytes written as "64", "1KiB" or "2MB". It exists so that
// proxy and loadgen parse sizes the same way without one importing the
// other.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes: "64", "64B", "1KiB", "128KiB", "1.5MiB",
// "1GiB" (binary, 1024) or "1kB", "1k", "2MB", "2M" (SI, 1000). Case does
// not matter. The result must be a whole number of bytes.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest first: "kib" must win over "b".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9},
	{"b", 1},
}

// ParseSize parses s as a Size.
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.ContainsAny(t, "xXpP_") || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("bad size %q: want bytes like 64, 1KiB, 128KiB, 1MiB", s)
	}
	v := f * mult
	if v < 0 {
		return 0, fmt.Errorf("bad size %q: negative", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("bad size %q: not a whole number of bytes", s)
	}
	if v > 1<<40 {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return Size(v), nil
}

// Set implements flag.Value.
func (z *Size) Set(s string) error {
	v, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// String returns z in the largest binary unit that divides it: "64B",
// "1KiB", "1536B".
func (z Size) String() string {
	switch {
	case z >= 1<<30 && z%(1<<30) == 0:
		return strconv.FormatInt(int64(z>>30), 10) + "GiB"
	case z >= 1<<20 && z%(1<<20) == 0:
		return strconv.FormatInt(int64(z>>20), 10) + "MiB"
	case z >= 1<<10 && z%(1<<10) == 0:
		return strconv.FormatInt(int64(z>>10), 10) + "KiB"
	}
	return strconv.FormatInt(int64(z), 10) + "B"
}
