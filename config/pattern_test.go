package config_test

import (
	"testing"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/pipeline"
)

// TestValidPatternAgreesWithPipeline checks that config accepts exactly the
// match expressions the router can compile.
func TestValidPatternAgreesWithPipeline(t *testing.T) {
	for _, p := range []string{
		"*", "**", "app.*", "app.**", "**.web", "a.**.b", "{a,b}.*", "{a,{b,c}}.x", "{}", "{,}",
		"app.** web.*", "  spaced  out ", "a,b", "a.{b", "a.b}", "}{", "{{}", "", "   ", "x.{a,b}}",
		"{a,b", "docker.{name}",
	} {
		cerr, perr := config.ValidPattern(p), pipeline.ValidatePattern(p)
		if (cerr == nil) != (perr == nil) {
			t.Errorf("%q: config says %v, pipeline says %v", p, cerr, perr)
		}
		if cerr != nil && perr != nil && cerr.Error() != perr.Error() {
			t.Errorf("%q: messages differ: config %q, pipeline %q", p, cerr, perr)
		}
	}
}
