package file

import "time"

// Status is the output's part of the agent's /status: its delivery
// engine's numbers (docs/operations.md).
func (o *Output) Status() any { return o.eng.Status() }

// LastError is the engine's last delivery failure and when ("": none).
func (o *Output) LastError() (string, time.Time) { return o.eng.LastError() }
