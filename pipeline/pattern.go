package pipeline

import "github.com/sluice-agent/sluice/internal/tagpattern"

// pattern is one compiled Fluentd-style tag pattern (see package
// tagpattern, which config validates route matches with as well). Matching
// is done once per distinct tag; Writers cache the result.
type pattern = tagpattern.Pattern

func parsePatterns(s string) ([]pattern, error) { return tagpattern.Parse(s) }

func matchAny(ps []pattern, tag []byte) bool { return tagpattern.MatchAny(ps, tag) }

// ValidatePattern reports whether s is a valid match expression.
func ValidatePattern(s string) error {
	_, err := tagpattern.Parse(s)
	return err
}
