package kube

import (
	"context"
	"strconv"
	"sync"
)

// shared holds the running clients of the process, so that several inputs
// with the same settings share one list and one watch.
var shared struct {
	mu sync.Mutex
	m  map[string]*sharedClient
}

type sharedClient struct {
	c      *Client
	refs   int
	cancel context.CancelFunc
	done   chan struct{}
}

// Acquire returns the running Client for cfg's API server, node, files and
// Namespaces setting, creating and starting it (Run in a goroutine of its
// own) on first use: one list and one watch per agent, whatever the number
// of inputs. The Log and Metrics of the first caller are used. release
// drops the caller's reference; the last one stops the client and waits
// for its goroutines.
func Acquire(cfg Config) (c *Client, release func(), err error) {
	key := cfg.APIServer + "\x00" + cfg.NodeName + "\x00" + cfg.TokenFile + "\x00" + cfg.CAFile + "\x00" + strconv.FormatBool(cfg.Namespaces)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	s := shared.m[key]
	if s == nil {
		c, err := New(cfg)
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		s = &sharedClient{c: c, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(s.done)
			c.Run(ctx)
		}()
		if shared.m == nil {
			shared.m = make(map[string]*sharedClient)
		}
		shared.m[key] = s
	}
	s.refs++
	var once sync.Once
	return s.c, func() {
		once.Do(func() {
			shared.mu.Lock()
			s.refs--
			last := s.refs == 0
			if last {
				delete(shared.m, key)
			}
			shared.mu.Unlock()
			if last {
				s.cancel()
				<-s.done
			}
		})
	}, nil
}
