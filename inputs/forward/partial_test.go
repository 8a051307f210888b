package forward

import "testing"

func TestPartialTruncateUTF8(t *testing.T) {
	for _, tc := range []struct {
		frags []string
		limit int
		want  string
	}{
		{[]string{"ab", "cd"}, 3, "abc"},
		{[]string{"a", "é"}, 2, "a"},                 // é is 2 bytes: not split
		{[]string{"日本", "語"}, 7, "日本"},               // 3-byte runes
		{[]string{"x🚀", "y"}, 4, "x"},                // 4-byte rune cut
		{[]string{"x🚀"}, 5, "x🚀"},                    // fits exactly
		{[]string{"\xff\xfe", "zz"}, 3, "\xff\xfez"}, // invalid bytes are kept as they are
	} {
		var g partialGroup
		for _, f := range tc.frags {
			g.appendLog([]byte(f), tc.limit)
		}
		if string(g.log) != tc.want {
			t.Errorf("%q limit %d: %q, want %q", tc.frags, tc.limit, g.log, tc.want)
		}
	}
}
