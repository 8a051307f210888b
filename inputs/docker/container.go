package docker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// configFile is Docker's per-container metadata file.
const configFile = "config.v2.json"

// container is one directory under the Docker root with its metadata: the
// tail.Source of its log files. It is used on the tail's reader goroutine
// only.
type container struct {
	in      *Input
	id      string // directory name
	shortID string
	dir     string
	name    string   // config.v2.json Name without "/", or shortID
	labels  []string // sorted key, value, key, value ...
	fixed   []byte   // msgpack container_id, container_name[, labels] pairs
	nFixed  int      // number of pairs in fixed

	cfgMod   time.Time // of the last read attempt
	cfgSize  int64
	cfgTried bool // cfgMod/cfgSize are valid
	warned   bool // the current metadata problem was logged

	// tagCache holds the rendered tag per stream (stdout, stderr) when the
	// template does not depend on the payload; reset on metadata change.
	tagCache [2][]byte
	tagOK    [2]bool
}

func newContainer(in *Input, id, dir string) *container {
	c := &container{in: in, id: id, dir: dir}
	c.shortID = id
	if len(id) > 12 {
		c.shortID = id[:12]
	}
	c.name = c.shortID
	c.build(in.labels)
	return c
}

// Refresh implements tail.Source: config.v2.json is read again when its
// mtime or size changed. A problem is reported once.
func (c *container) Refresh() error {
	if err := c.refresh(c.in.labels); err != nil {
		return fmt.Errorf("%w (name is the short id)", err)
	}
	return nil
}

// label returns the value of label k, or "".
func (c *container) label(k []byte) string {
	for i := 0; i+1 < len(c.labels); i += 2 {
		if c.labels[i] == string(k) {
			return c.labels[i+1]
		}
	}
	return ""
}

// dockerConfig is the part of config.v2.json the input uses.
type dockerConfig struct {
	Name   string `json:"Name"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
}

// refresh (re)reads config.v2.json if its mtime or size changed since the
// last attempt. It returns a problem only the first time one occurs (the
// caller logs it) and leaves the previous metadata (at first the short id
// as name, no labels) in place on error.
func (c *container) refresh(includeLabels bool) error {
	path := filepath.Join(c.dir, configFile)
	st, err := os.Stat(path)
	if err != nil {
		c.cfgTried = false
		return c.problem(fmt.Errorf("stat %s: %w", configFile, err))
	}
	if c.cfgTried && st.ModTime().Equal(c.cfgMod) && st.Size() == c.cfgSize {
		return nil
	}
	c.cfgTried, c.cfgMod, c.cfgSize = true, st.ModTime(), st.Size()
	data, err := os.ReadFile(path)
	if err != nil {
		c.cfgTried = false // retry at the next scan
		return c.problem(fmt.Errorf("read %s: %w", configFile, err))
	}
	var dc dockerConfig
	if err := json.Unmarshal(data, &dc); err != nil {
		return c.problem(fmt.Errorf("parse %s: %w", configFile, err))
	}
	c.warned = false
	c.name = c.shortID
	if n := trimSlash(dc.Name); n != "" {
		c.name = n
	}
	c.labels = c.labels[:0]
	keys := make([]string, 0, len(dc.Config.Labels))
	for k := range dc.Config.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c.labels = append(c.labels, k, dc.Config.Labels[k])
	}
	c.build(includeLabels)
	return nil
}

func (c *container) problem(err error) error {
	if c.warned {
		return nil
	}
	c.warned = true
	return err
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}

// build encodes the per-container record fields and drops cached tags.
func (c *container) build(includeLabels bool) {
	b := c.fixed[:0]
	b = msgp.AppendString(b, "container_id")
	b = msgp.AppendString(b, c.id)
	b = msgp.AppendString(b, "container_name")
	b = msgp.AppendString(b, c.name)
	c.nFixed = 2
	if includeLabels && len(c.labels) > 0 {
		b = msgp.AppendString(b, "labels")
		b = msgp.AppendMapHeader(b, uint32(len(c.labels)/2))
		for _, s := range c.labels {
			b = msgp.AppendString(b, s)
		}
		c.nFixed++
	}
	b, n := c.appendECS(b) // ecs.go
	c.nFixed += n
	c.fixed = b
	c.tagOK = [2]bool{}
}
