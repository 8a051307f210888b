package buffer

import "os"

// SetSyncHook makes every fsync of every queue in this process call fn
// instead of (*os.File).Sync, and returns a function that restores the
// previous one. It exists for crash tests (internal/testkit/powercut
// records what each fsync made durable, to model a power cut); fn must
// call f.Sync itself. Not safe to call while queues are open.
func SetSyncHook(fn func(f *os.File) error) (restore func()) {
	prev := syncFile
	syncFile = fn
	return func() { syncFile = prev }
}
