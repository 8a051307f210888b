package docker

// Ready reports whether the input's first scan of the Docker root ran.
func (in *Input) Ready() bool { return in.t.Ready() }

// Status returns the input's files and their lag (a tail.Status). Safe
// from any goroutine.
func (in *Input) Status() any { return in.t.Status() }
