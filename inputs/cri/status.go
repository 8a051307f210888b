package cri

// Ready reports whether the input's first scan of the pod logs ran. With
// Kubernetes metadata that is after the wait for the first pod list
// (metadata_wait), since Run starts tailing only then.
func (in *Input) Ready() bool { return in.t.Ready() }

// Status returns the input's files and their lag (a tail.Status). Safe
// from any goroutine.
func (in *Input) Status() any { return in.t.Status() }
