package tagpattern

import "testing"

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pat, tag string
		want     bool
	}{
		{"app.*", "app.web", true},
		{"app.*", "app", false},
		{"app.**", "app", true},
		{"app.**", "apple", false},
		{"**.err", "a.b.err", true},
		{"{a,b}.*", "b.x", true},
		{"{a.*,b}", "b.x", false},
		{"a.* b.*", "b.q", true},
		{"a.b", "axb", false},
	} {
		ps, err := Parse(c.pat)
		if err != nil {
			t.Fatalf("%q: %v", c.pat, err)
		}
		if got := MatchAny(ps, []byte(c.tag)); got != c.want {
			t.Errorf("%q ~ %q = %v, want %v", c.pat, c.tag, got, c.want)
		}
	}
	if (Pattern{}).Match([]byte("x")) {
		t.Error("zero Pattern matched")
	}
}

func TestErrors(t *testing.T) {
	for pat, want := range map[string]string{
		"":          "empty pattern",
		"   ":       "empty pattern",
		"app.{a,b":  `pattern "app.{a,b": unclosed '{'`,
		"web.*}":    `pattern "web.*}": unmatched '}'`,
		"x.{a,b}}":  `pattern "x.{a,b}}": unmatched '}'`,
		"ok {a,{b}": `pattern "{a,{b}": unclosed '{'`,
	} {
		_, err := Parse(pat)
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", pat, err, want)
		}
	}
}
