package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-agent/sluice/internal/tagpattern"
)

// Validate checks a Config built or modified in code, with the same rules
// Parse applies. Messages use the Line fields of components when set. It
// returns Errors, or nil.
func (c *Config) Validate() error {
	lines := map[string]int{}
	for i, in := range c.Inputs {
		if in.Line > 0 {
			lines[fmt.Sprintf("inputs[%d]", i)] = in.Line
		}
	}
	for i, o := range c.Outputs {
		if o.Line > 0 {
			lines[fmt.Sprintf("outputs[%d]", i)] = o.Line
		}
	}
	for i, r := range c.Routes {
		if r.Line > 0 {
			lines[fmt.Sprintf("routes[%d]", i)] = r.Line
		}
	}
	for i, p := range c.Processors {
		if p.Line > 0 {
			lines[fmt.Sprintf("processors[%d]", i)] = p.Line
		}
	}
	if es := validate(c, lines, nil); len(es) > 0 {
		return es.sorted()
	}
	return nil
}

// checker collects validation problems. lines maps field paths to lines;
// a path without an entry takes the line of its closest ancestor.
type checker struct {
	file  string
	lines map[string]int
	raw   map[string]string // see decoder.raw
	errs  Errors
	// exclusive resources, for conflict checks
	listeners []listener
	files     []fsPath
}

type listener struct {
	path, addr, host, port string
}

type fsPath struct {
	path, file string
}

func validate(c *Config, lines map[string]int, raw map[string]string) Errors {
	v := &checker{file: c.File, lines: lines, raw: raw}
	if c.DataDir == "" {
		v.errorf("data_dir", "must not be empty")
	}
	v.oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	v.positive("shutdown_grace", c.ShutdownGrace)
	if c.MetricsAddr != "" {
		v.claimListen("metrics_addr", c.MetricsAddr)
	}

	if len(c.Inputs) == 0 {
		v.errorf("inputs", "at least one input is required")
	}
	ids := map[string]string{}
	for i := range c.Inputs {
		in := &c.Inputs[i]
		p := fmt.Sprintf("inputs[%d]", i)
		v.id(p+".id", in.ID, ids)
		v.section(p, "input", in.Type, reflect.ValueOf(in).Elem(), inputKinds)
	}

	if len(c.Outputs) == 0 {
		v.errorf("outputs", "at least one output is required")
	}
	outIDs := map[string]string{}
	for i := range c.Outputs {
		o := &c.Outputs[i]
		p := fmt.Sprintf("outputs[%d]", i)
		v.id(p+".id", o.ID, outIDs)
		v.buffer(p+".buffer", &o.Buffer)
		v.delivery(p+".delivery", &o.Delivery, &o.Buffer)
		v.section(p, "output", o.Type, reflect.ValueOf(o).Elem(), outputKinds)
		if oc, ok := o.Spec().(outputChecker); ok {
			oc.checkOutput(v, p, o)
		}
	}

	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if err := ValidPattern(r.Match); err != nil {
			v.invalid(p+".match", r.Match, "pattern", err)
		}
		if len(r.Outputs) == 0 {
			v.errorf(p+".outputs", "at least one output is required")
		}
		for j, name := range r.Outputs {
			if _, ok := outIDs[name]; !ok {
				op := fmt.Sprintf("%s.outputs[%d]", p, j)
				v.errorf(op, "unknown output %s%s", v.q(op, name), v.didYouMean(name, outIDs))
			}
		}
		if r.Field == "" && r.Value != "" {
			v.errorf(p+".value", "set without field")
		}
		if r.When != nil {
			v.checkCondition(p+".when", r.When)
		}
	}
	v.checkProcessors(c.Processors)
	if c.DefaultOutput != "" {
		if _, ok := outIDs[c.DefaultOutput]; !ok {
			v.errorf("default_output", "unknown output %s%s", v.q("default_output", c.DefaultOutput), v.didYouMean(c.DefaultOutput, outIDs))
		}
	}
	return v.errs
}

// section checks a component's type and, through its check method, the
// section of that type. c is the Input or Output struct value at path p.
func (v *checker) section(p, what, typ string, c reflect.Value, kinds []kind) {
	k := findKind(kinds, typ)
	switch {
	case typ == "":
		v.errorf(p+".type", "missing (want %s)", wantTypes(kinds))
	case k == nil:
		v.errorf(p+".type", "unknown %s type %s (want %s)", what, v.q(p+".type", typ), wantTypes(kinds))
	default:
		s := k.section(c)
		if s == nil {
			v.errorf(p, "type %s without its settings (%s.%s is nil)", typ, c.Type().Name(), k.gonam)
			return
		}
		s.check(v, p+"."+typ)
	}
}

func (v *checker) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// line returns the line of path or of its closest ancestor that has one.
func (v *checker) line(path string) int {
	for p := path; p != ""; {
		if l, ok := v.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// where names another field for conflict messages: "path" or "path (line N)".
func (v *checker) where(path string) string {
	if l := v.line(path); l > 0 {
		return fmt.Sprintf("%s (line %d)", path, l)
	}
	return path
}

var idRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

// id checks a component id, which names a directory under data_dir, and
// its uniqueness among ids (id → path).
func (v *checker) id(path, id string, ids map[string]string) {
	switch {
	case id == "":
		v.errorf(path, "missing")
	case id == "." || id == ".." || !idRE.MatchString(id):
		v.errorf(path, "invalid id %s: use letters, digits, '_', '.' and '-' (it names a directory)", v.q(path, id))
		if _, dup := ids[id]; !dup {
			ids[id] = path // so that references to it are not reported as well
		}
	default:
		if prev, dup := ids[id]; dup {
			v.errorf(path, "duplicate id %s, already used by %s", v.q(path, id), v.where(prev))
			return
		}
		ids[id] = path
	}
}

func (v *checker) oneOf(path, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	want := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	v.errorf(path, "invalid value %s (want %s)", v.q(path, val), want)
}

// outputChecker is implemented by output types whose rules involve the
// output's common sections (buffer, delivery) as well as their own.
type outputChecker interface {
	checkOutput(v *checker, path string, o *Output)
}

func (v *checker) positive(path string, d time.Duration) {
	if d <= 0 {
		v.errorf(path, "must be positive, got %s", d)
	}
}

func (v *checker) positiveInt(path string, n int) {
	if n <= 0 {
		v.errorf(path, "must be positive, got %d", n)
	}
}

func (v *checker) positiveSize(path string, n ByteSize) {
	if n <= 0 {
		v.errorf(path, "must be positive, got %d", n)
	}
}

func (v *checker) buffer(p string, b *Buffer) {
	v.positiveSize(p+".max_bytes", b.MaxBytes)
	v.positiveSize(p+".segment_bytes", b.SegmentBytes)
	v.positiveSize(p+".chunk_bytes", b.ChunkBytes)
	if b.MaxBytes > 0 && b.SegmentBytes > 0 && b.SegmentBytes > b.MaxBytes/2 {
		v.errorf(p+".segment_bytes", "%s is more than half of max_bytes (%s)", formatSize(b.SegmentBytes), formatSize(b.MaxBytes))
	}
	if b.ChunkBytes > 0 && b.SegmentBytes > 0 && b.ChunkBytes > b.SegmentBytes {
		v.errorf(p+".chunk_bytes", "%s is larger than segment_bytes (%s)", formatSize(b.ChunkBytes), formatSize(b.SegmentBytes))
	}
	v.oneOf(p+".overflow", b.Overflow, "drop_oldest", "block")
	v.oneOf(p+".fsync", b.Fsync, "always", "interval")
	v.positive(p+".fsync_interval", b.FsyncInterval)
}

func (v *checker) tls(p string, t *TLS, server bool) {
	if t == nil {
		return
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.errorf(p+".key_file", "required when cert_file is set")
	case t.KeyFile != "" && t.CertFile == "":
		v.errorf(p+".cert_file", "required when key_file is set")
	case server && t.Enabled && t.CertFile == "":
		v.errorf(p+".cert_file", "required for a TLS server (with key_file)")
	}
	if t.ClientAuth {
		if !server {
			v.errorf(p+".client_auth", "only valid for inputs")
		} else if t.CAFile == "" {
			v.errorf(p+".ca_file", "required when client_auth is set")
		}
	}
}

func (v *checker) security(p string, s *Security, server bool) {
	if s == nil {
		return
	}
	switch {
	case s.SharedKey == "" && len(s.Users) > 0:
		v.errorf(p+".shared_key", "required when users are set")
	case s.SharedKey == "":
		v.errorf(p+".shared_key", "required when security is set")
	}
	if !server && len(s.Users) > 0 {
		v.errorf(p+".users", "only valid for inputs (an output sets username and password per server)")
		return
	}
	names := map[string]string{}
	for i, u := range s.Users {
		up := fmt.Sprintf("%s.users[%d]", p, i)
		if u.Username == "" {
			v.errorf(up+".username", "missing")
		} else if prev, dup := names[u.Username]; dup {
			v.errorf(up+".username", "duplicate user %s, already defined by %s", v.q(up+".username", u.Username), v.where(prev))
		} else {
			names[u.Username] = up
		}
		if u.Password == "" {
			v.errorf(up+".password", "missing")
		}
	}
}

// claimListen checks a TCP listen address and that no other listener claims the
// same port on an overlapping host.
func (v *checker) claimListen(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = parsePort(port)
	}
	if err != nil {
		v.errorf(path, "invalid address %s (want host:port)", v.q(path, addr))
		return
	}
	l := listener{path: path, addr: addr, host: normHost(host), port: port}
	if n, _ := parsePort(port); n != 0 { // port 0 picks a free port: never conflicts
		for _, o := range v.listeners {
			if o.port == l.port && (o.host == l.host || o.host == "*" || l.host == "*") {
				v.errorf(path, "address %s conflicts with %s of %s", v.q(path, addr), v.q(o.path, o.addr), v.where(o.path))
				return
			}
		}
	}
	v.listeners = append(v.listeners, l)
}

// claimFile checks that no other component claims the same filesystem path
// (unix sockets and output files share one namespace).
func (v *checker) claimFile(path, name string) {
	clean := filepath.Clean(name)
	for _, o := range v.files {
		if o.file == clean {
			v.errorf(path, "path %s is also used by %s", v.q(path, name), v.where(o.path))
			return
		}
	}
	v.files = append(v.files, fsPath{path: path, file: clean})
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return n, nil
}

// normHost maps every wildcard host to "*" and localhost to 127.0.0.1.
func normHost(h string) string {
	switch h = strings.ToLower(h); h {
	case "", "0.0.0.0", "::", "[::]":
		return "*"
	case "localhost":
		return "127.0.0.1"
	}
	return h
}

// validServerAddress accepts host:port (port 1..65535) or unix:///path.
func validServerAddress(a string) bool {
	if rest, ok := strings.CutPrefix(a, "unix://"); ok {
		return len(rest) >= 2 && rest[0] == '/'
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return false
	}
	n, err := parsePort(port)
	return err == nil && n > 0
}

// ValidPattern reports whether s is a valid route match expression: one or
// more space-separated Fluentd-style patterns ("app.*", "app.**",
// "{a,b}.*"). It is the router's own parser (package tagpattern).
func ValidPattern(s string) error {
	_, err := tagpattern.Parse(s)
	return err
}

// checkTemplate validates a tag template's placeholders: {name}, {id},
// {short_id}, {stream}, {label:KEY}, {field:KEY}, and {tag} if allowTag.
func checkTemplate(s string, allowTag bool) error {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '}':
			return fmt.Errorf("unmatched \"}\" in %q", s)
		case '{':
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				return fmt.Errorf("unclosed \"{\" in %q", s)
			}
			ph := s[i+1 : i+j]
			i += j
			switch ph {
			case "name", "id", "short_id", "stream":
				continue
			case "tag":
				if allowTag {
					continue
				}
				return errors.New(`placeholder "{tag}" is only valid in a forward input's tag`)
			}
			if k, ok := strings.CutPrefix(ph, "label:"); ok {
				if k == "" {
					return errors.New(`placeholder "{label:}" needs a key, e.g. {label:app}`)
				}
				continue
			}
			if k, ok := strings.CutPrefix(ph, "field:"); ok {
				if k == "" {
					return errors.New(`placeholder "{field:}" needs a key, e.g. {field:level}`)
				}
				continue
			}
			want := "{name}, {id}, {short_id}, {stream}, {label:KEY} or {field:KEY}"
			if allowTag {
				want = "{tag}, " + want
			}
			return fmt.Errorf("unknown placeholder %q (want %s)", "{"+ph+"}", want)
		}
	}
	return nil
}

// didYouMean suggests the id (of ids: id → path) closest to s.
func (v *checker) didYouMean(s string, ids map[string]string) string {
	names := make([]string, 0, len(ids))
	for id := range ids {
		names = append(names, id)
	}
	sort.Strings(names)
	if c := suggest(s, names); c != "" {
		return fmt.Sprintf(" (did you mean %s?)", v.q(ids[c], c))
	}
	return ""
}

// q quotes the value at path for a message: as written in the file if it
// came from the environment, else as is.
func (v *checker) q(path, val string) string {
	if r, ok := v.raw[path]; ok {
		return strconv.Quote(r)
	}
	return strconv.Quote(val)
}

// invalid reports err about the value at path; for a value that came from
// the environment it names the value as written instead, since err may
// quote parts of it.
func (v *checker) invalid(path, val, what string, err error) {
	if _, ok := v.raw[path]; ok {
		v.errorf(path, "invalid %s %s", what, v.q(path, val))
		return
	}
	v.errorf(path, "%v", err)
}

// formatSize renders n with the largest binary unit dividing it exactly.
func formatSize(n ByteSize) string {
	units := []struct {
		suffix string
		size   ByteSize
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(int64(n/u.size), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(n), 10)
}
