package config

import "time"

// Delivery configures how an output built on the delivery engine batches,
// retries and dead-letters (every output type except stdout). A zero field
// takes the default of the output's type (the type's documentation names
// it): an Elasticsearch batch is sent after 1s, an S3 object after 5m.
type Delivery struct {
	// Workers is the number of concurrent requests.
	Workers int `yaml:"workers"`
	// FlushInterval bounds how long a batch waits for more events after its
	// first one: a quiet log type is still delivered within it.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxInFlightBytes bounds the queued bytes held in memory between the
	// queue and the destination's acknowledgement (batches being built,
	// sent or retried). Default 8 MiB per worker, at most a quarter of
	// buffer.max_bytes.
	MaxInFlightBytes ByteSize `yaml:"max_in_flight_bytes"`
	// RetryInitial is the first wait of the exponential back-off (with
	// full jitter) between retries of the events a destination did not
	// take. Default 1s.
	RetryInitial time.Duration `yaml:"retry_initial"`
	// RetryMax caps the back-off's wait. Default 60s.
	RetryMax time.Duration `yaml:"retry_max"`
	// MaxRetries gives up on an event after this many retries: it goes to
	// the dead-letter queue (reason max_retries). 0 (default) retries
	// forever: the data waits on disk.
	MaxRetries int `yaml:"max_retries"`
	// DeadLetter is where events the destination refused for good go.
	DeadLetter DeadLetter `yaml:"dead_letter"`
}

// DeadLetter configures an output's dead-letter queue: a disk queue in the
// buffer's format under <data_dir>/deadletter/<output id>, each event
// carrying the reason it was refused. Read it with `agent buffer`.
type DeadLetter struct {
	// Enabled keeps refused events (default true); false drops them,
	// counted by reason.
	Enabled *bool `yaml:"enabled"`
	// MaxBytes caps the queue on disk; when full its oldest events are
	// dropped, counted. Default 256 MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// DefaultDelivery is the zero Delivery: every field takes its type's
// default (see the field docs), applied by the delivery engine.
func DefaultDelivery() Delivery { return Delivery{} }

func (v *checker) delivery(p string, d *Delivery, b *Buffer) {
	if d.Workers < 0 {
		v.errorf(p+".workers", "must not be negative, got %d", d.Workers)
	}
	if d.FlushInterval < 0 {
		v.errorf(p+".flush_interval", "must not be negative, got %s", d.FlushInterval)
	}
	if d.MaxInFlightBytes < 0 {
		v.errorf(p+".max_in_flight_bytes", "must not be negative, got %d", d.MaxInFlightBytes)
	} else if d.MaxInFlightBytes > 0 && b.MaxBytes > 0 && d.MaxInFlightBytes > b.MaxBytes/4 {
		v.errorf(p+".max_in_flight_bytes", "%s is more than a quarter of buffer.max_bytes (%s): drop_oldest could then only make room by dropping chunks in flight",
			formatSize(d.MaxInFlightBytes), formatSize(b.MaxBytes))
	}
	if d.RetryInitial < 0 || d.RetryMax < 0 {
		v.errorf(p+".retry_initial", "retry_initial and retry_max must not be negative")
	} else if d.RetryInitial > 0 && d.RetryMax > 0 && d.RetryMax < d.RetryInitial {
		v.errorf(p+".retry_max", "%s is below retry_initial %s", d.RetryMax, d.RetryInitial)
	}
	if d.MaxRetries < 0 {
		v.errorf(p+".max_retries", "must not be negative, got %d", d.MaxRetries)
	}
	if d.DeadLetter.MaxBytes < 0 {
		v.errorf(p+".dead_letter.max_bytes", "must not be negative, got %d", d.DeadLetter.MaxBytes)
	}
}
