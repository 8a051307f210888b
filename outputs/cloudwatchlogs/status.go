package cloudwatchlogs

// Status is the output's part of the agent's /status: its delivery
// engine's numbers (docs/operations.md).
func (o *Output) Status() any { return o.eng.Status() }
