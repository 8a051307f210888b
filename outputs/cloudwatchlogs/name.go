package cloudwatchlogs

import (
	"bytes"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/outputs/internal/awsout"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// nameTemplate is a compiled log group or stream name template.
type nameTemplate struct {
	parts    []namePart
	group    bool // group name rules, else stream name rules
	usesTag  bool
	usesFild bool
}

type namePart struct {
	kind  config.CloudWatchLogsNameKind
	text  []byte // literal (hostname already substituted)
	n     int    // tag part, -1 for the whole tag
	field awsout.Field
}

func compileName(t string, group bool, hostname string) (*nameTemplate, error) {
	parts, err := config.ParseCloudWatchLogsName(t, group)
	if err != nil {
		return nil, err
	}
	nt := &nameTemplate{group: group}
	for _, p := range parts {
		switch p.Kind {
		case config.CWLText:
			nt.parts = append(nt.parts, namePart{kind: config.CWLText, text: []byte(p.Text)})
		case config.CWLHostname: // fixed for the run: a literal
			nt.parts = append(nt.parts, namePart{kind: config.CWLText, text: nt.sanitize(nil, []byte(hostname))})
		case config.CWLTag:
			nt.usesTag = true
			nt.parts = append(nt.parts, namePart{kind: config.CWLTag, n: p.N})
		case config.CWLField:
			nt.usesFild = true
			nt.parts = append(nt.parts, namePart{kind: config.CWLField, field: awsout.NewField(p.Text)})
		}
	}
	return nt, nil
}

// sanitize appends v with the bytes a name cannot hold replaced by '_'.
func (t *nameTemplate) sanitize(dst, v []byte) []byte {
	for _, c := range v {
		ok := c >= 0x20 && c != 0x7f
		if t.group {
			ok = config.CloudWatchLogsGroupByte(c)
		} else if ok {
			ok = config.CloudWatchLogsStreamByte(c)
		}
		if !ok {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// render appends the name for ev: placeholder values sanitized, a missing
// one as "unknown", the whole cut at 512 bytes (on a character boundary).
func (t *nameTemplate) render(dst []byte, ev *delivery.Event, scratch []byte) ([]byte, []byte) {
	start := len(dst)
	for i := range t.parts {
		p := &t.parts[i]
		n := len(dst)
		switch p.kind {
		case config.CWLText:
			dst = append(dst, p.text...)
			continue
		case config.CWLTag:
			dst = t.sanitize(dst, tagPart(ev.Tag, p.n))
		case config.CWLField:
			var ok bool
			if scratch, ok = p.field.Append(scratch[:0], ev.Record); ok {
				dst = t.sanitize(dst, scratch)
			}
		}
		if len(dst) == n {
			dst = append(dst, record.Unknown...)
		}
	}
	if len(dst)-start > config.CloudWatchLogsMaxNameBytes {
		dst = dst[:start+awsout.TruncateUTF8(dst[start:], config.CloudWatchLogsMaxNameBytes)]
	}
	return dst, scratch
}

// tagPart returns the n-th dot-separated part of tag (the whole tag for
// n < 0), or nil.
func tagPart(tag []byte, n int) []byte {
	if n < 0 {
		return tag
	}
	for i := 0; ; i++ {
		j := bytes.IndexByte(tag, '.')
		if i == n {
			if j < 0 {
				return tag
			}
			return tag[:j]
		}
		if j < 0 {
			return nil
		}
		tag = tag[j+1:]
	}
}
