package pipeline

import "testing"

func TestPatterns(t *testing.T) {
	cases := []struct {
		pat  string
		tag  string
		want bool
	}{
		{"app.*", "app.web", true},
		{"app.*", "app", false},
		{"app.*", "app.web.1", false},
		{"app.**", "app", true},
		{"app.**", "app.web", true},
		{"app.**", "app.web.1", true},
		{"app.**", "apple", false},
		{"**", "anything.at.all", true},
		{"*", "one", true},
		{"*", "one.two", false},
		{"**.err", "err", true},
		{"**.err", "a.b.err", true},
		{"**.err", "a.berr", false},
		{"{a,b}.*", "a.x", true},
		{"{a,b}.*", "b.x", true},
		{"{a,b}.*", "c.x", false},
		{"{a.*,b}", "a.x", true},
		{"{a.*,b}", "b", true},
		{"{a.*,b}", "b.x", false},
		{"a.* b.*", "b.q", true},
		{"a.b", "a.b", true},
		{"a.b", "axb", false},
		{"docker.{web,api}", "docker.api", true},
	}
	for _, c := range cases {
		ps, err := parsePatterns(c.pat)
		if err != nil {
			t.Fatalf("%q: %v", c.pat, err)
		}
		if got := matchAny(ps, []byte(c.tag)); got != c.want {
			t.Errorf("%q ~ %q = %v, want %v", c.pat, c.tag, got, c.want)
		}
	}
}

func TestPatternErrors(t *testing.T) {
	for _, p := range []string{"", "  ", "{a,b", "a}", "{a,{b}"} {
		if err := ValidatePattern(p); err == nil {
			t.Errorf("%q: no error", p)
		}
	}
}
