package tail

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for _, s := range []string{
		"2024-01-02T03:04:05Z", "2024-01-02T03:04:05.1Z", "2024-01-02T03:04:05.12Z",
		"2024-01-02T03:04:05.123456789Z", "2024-02-29T23:59:59.999999999Z",
		"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z", "2100-03-01T00:00:00Z",
		"2024-01-02T03:04:05.5+02:00", "2024-01-02T03:04:05-07:30", "2024-01-02T03:04:05.1+09:00",
		"2038-01-19T03:14:08Z", "2262-04-08T23:47:16Z", "1677-09-24T00:00:00Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []func([]byte) (int64, bool){ParseTime, new(TimeParser).Parse} {
			got, ok := p([]byte(s))
			if !ok || got != want.UnixNano() {
				t.Errorf("%s: got %d %v, want %d", s, got, ok, want.UnixNano())
			}
		}
	}
	if got, ok := ParseTime([]byte("2024-01-02t03:04:05.5z")); !ok || got != time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC).UnixNano() {
		t.Errorf("lower-case t and z: %d %v", got, ok)
	}
	for _, s := range []string{
		"2023-02-29T00:00:00Z", "2024-01-02T24:00:00Z", "2024-01-02T03:04:05.Z", "2024-01-02T03:04:05+0200",
		"2024-01-02", "2024-01-02T03:04:05", "2024-01-02T03:04:05.1234567890Z", "2024-01-02T03:04:60Z",
		"2024-01-02T03:04:05Zx", "2024-01-02T03:04:05+24:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
		"2024-13-02T03:04:05Z", "2024-01-02T03:04:05.1+09:0", "+024-01-02T03:04:05Z",
	} {
		if _, ok := ParseTime([]byte(s)); ok {
			t.Errorf("%s: parsed, want error", s)
		}
		if _, ok := new(TimeParser).Parse([]byte(s)); ok {
			t.Errorf("%s: parsed by TimeParser, want error", s)
		}
	}
}

// TestTimeParserCache: the cached date and time of day is only reused for
// the same first 19 bytes, and a bad timestamp does not poison it.
func TestTimeParserCache(t *testing.T) {
	var p TimeParser
	seq := []string{
		"2024-01-02T03:04:05.1Z", "2024-01-02T03:04:05.2+01:00", "2024-01-02T03:04:06Z",
		"2024-01-02T03:04:06.5x", "2024-01-02T03:04:06.5Z", "2024-02-30T03:04:06Z", "2024-01-02T03:04:06.7Z",
	}
	for _, s := range seq {
		got, ok := p.Parse([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok != (err == nil) || (ok && got != want.UnixNano()) {
			t.Errorf("%s: got %d %v, want %v %v", s, got, ok, want.UnixNano(), err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { p.Parse([]byte("2024-01-02T03:04:06.7Z")) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
