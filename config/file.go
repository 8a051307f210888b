package config

// FileOutput writes JSON lines to a file.
type FileOutput struct {
	// Path of the file the JSON lines are appended to (created if
	// missing). Required.
	Path string `yaml:"path"`
}

// StdoutOutput writes JSON lines to the agent's stdout.
type StdoutOutput struct{}

func (f *FileOutput) setDefaults() { *f = FileOutput{} }

func (f *FileOutput) check(v *checker, p string) {
	if f.Path == "" {
		v.errorf(p+".path", "missing")
		return
	}
	v.claimFile(p+".path", f.Path)
}

func (s *StdoutOutput) setDefaults() {}

func (s *StdoutOutput) check(*checker, string) {}
