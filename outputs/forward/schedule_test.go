package forward

import (
	"strings"
	"testing"
)

// TestPick checks the smooth weighted round-robin and the standby rule on
// the loop's own view of the servers.
func TestPick(t *testing.T) {
	type srv struct {
		weight   int
		standby  bool
		up       bool
		inflight int
	}
	tests := map[string]struct {
		servers []srv
		want    string // names of 8 successive picks ("-" for none), without acks
	}{
		"weights 1:3":           {[]srv{{1, false, true, 0}, {3, false, true, 0}}, "babbbabb"},
		"equal":                 {[]srv{{60, false, true, 0}, {60, false, true, 0}}, "abababab"},
		"one down":              {[]srv{{1, false, false, 0}, {3, false, true, 0}}, "bbbbbbbb"},
		"standby unused":        {[]srv{{1, false, true, 0}, {1, true, true, 0}}, "aaaaaaaa"},
		"failover":              {[]srv{{1, false, false, 0}, {1, true, true, 0}}, "bbbbbbbb"},
		"active full, no spill": {[]srv{{1, false, true, 8}, {1, true, true, 0}}, "--------"},
		"all down":              {[]srv{{1, false, false, 0}, {1, true, false, 0}}, "--------"},
		"fills up then skips":   {[]srv{{1, false, true, 5}, {1, false, true, 0}}, "abababbb"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := &Output{maxInFlight: 8}
			for _, s := range tc.servers {
				o.servers = append(o.servers, &server{weight: s.weight, standby: s.standby, up: s.up, inflight: s.inflight})
			}
			var got strings.Builder
			for range 8 {
				s := o.pick()
				if s == nil {
					got.WriteByte('-')
					continue
				}
				s.inflight++
				for i, x := range o.servers {
					if x == s {
						got.WriteByte(byte('a' + i))
					}
				}
			}
			if got.String() != tc.want {
				t.Fatalf("picks %s, want %s", got.String(), tc.want)
			}
		})
	}
}
