package forward

import (
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/internal/wire"
)

// tagValues are the values of one event's tag placeholders, read from the
// record as it will be stored (normalized).
type tagValues struct {
	tmpl      *record.Template
	clientTag []byte
	rec       []byte
	// log is the JSON log payload looked into by a {field:KEY} the record
	// does not have (parse_json off), nil if none; it is scanned at most
	// once per event, for all the template's keys, into fields.
	log     []byte
	fields  *record.Fields
	scanned bool
	found   bool
}

// AppendValue implements record.Values.
func (v *tagValues) AppendValue(dst []byte, k record.Kind, key []byte) []byte {
	var s []byte
	switch k {
	case record.Tag:
		s = v.clientTag
	case record.Name:
		s, _ = wire.LookupString(v.rec, keyContainerName)
		if len(s) > 0 && s[0] == '/' {
			s = s[1:]
		}
	case record.ID:
		s, _ = wire.LookupString(v.rec, keyContainerID)
	case record.ShortID:
		s, _ = wire.LookupString(v.rec, keyContainerID)
		if len(s) > 12 {
			s = s[:12]
		}
	case record.Stream:
		var ok bool
		if s, ok = wire.LookupString(v.rec, keyStream); !ok {
			s, _ = wire.LookupString(v.rec, keySource)
		}
	case record.Label:
		if labels, found := lookupRaw(v.rec, keyLabels); found {
			s, _ = wire.LookupString(labels, key)
		}
	case record.Field:
		raw, found := lookupRaw(v.rec, key)
		if !found && v.log != nil {
			if !v.scanned {
				v.scanned = true
				v.found = v.fields.Find(v.log, v.tmpl.FieldKeys(), nil)
			}
			if v.found {
				raw, found = v.fields.Value(key)
			}
		}
		if found {
			dst, _ = record.AppendText(dst, raw)
		}
		return dst
	}
	return append(dst, s...)
}
