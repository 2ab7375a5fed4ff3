package units

import "testing"

func TestParseSize(t *testing.T) {
	for s, want := range map[string]Size{"64": 64, "1KiB": 1024, "2MB": 2e6, "1.5MiB": 3 << 19, "1gib": 1 << 30} {
		got, err := ParseSize(s)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "x", "-1", "1.5", "0x10", "2TiB"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q): no error", s)
		}
	}
	if s := Size(1536).String(); s != "1536B" {
		t.Errorf("String = %q", s)
	}
}
