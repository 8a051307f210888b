package awsfake

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

type logGroup struct {
	retention int // days; 0: forever
	class     string
	kmsKeyID  string
	created   time.Time
	streams   map[string]*logStream
}

type logStream struct {
	created time.Time
	events  []LogEvent
}

var retentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

func validGroupName(n string) bool {
	if len(n) < 1 || len(n) > 512 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/#", c) >= 0) {
			return false
		}
	}
	return true
}

func validStreamName(n string) bool {
	return len(n) >= 1 && len(n) <= 512 && !strings.ContainsAny(n, ":*")
}

func (s *Server) checkNames(group, stream *string, needStream bool) *Fault {
	switch {
	case group == nil:
		return &Fault{Type: "InvalidParameterException", Message: constraint("null", "logGroupName", "Member must not be null")}
	case !validGroupName(*group):
		return &Fault{Type: "InvalidParameterException", Message: constraint(*group, "logGroupName", `Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+`)}
	case !needStream:
		return nil
	case stream == nil:
		return &Fault{Type: "InvalidParameterException", Message: constraint("null", "logStreamName", "Member must not be null")}
	case !validStreamName(*stream):
		return &Fault{Type: "InvalidParameterException", Message: constraint(*stream, "logStreamName", "Member must satisfy regular expression pattern: [^:*]*")}
	}
	return nil
}

var (
	noGroup  = &Fault{Type: "ResourceNotFoundException", Message: "The specified log group does not exist."}
	noStream = &Fault{Type: "ResourceNotFoundException", Message: "The specified log stream does not exist."}
)

func (s *Server) logs(op string, body []byte) (any, *Fault) {
	switch op {
	case "PutLogEvents":
		return s.putLogEvents(body)
	case "CreateLogGroup":
		var in struct {
			LogGroupName  *string `json:"logGroupName"`
			LogGroupClass string  `json:"logGroupClass"`
			KmsKeyID      string  `json:"kmsKeyId"`
		}
		if f := decode(body, &in); f != nil {
			return nil, f
		}
		if f := s.checkNames(in.LogGroupName, nil, false); f != nil {
			return nil, f
		}
		switch in.LogGroupClass {
		case "", "STANDARD", "INFREQUENT_ACCESS", "DELIVERY":
		default:
			return nil, &Fault{Type: "InvalidParameterException", Message: constraint(in.LogGroupClass, "logGroupClass", "Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]")}
		}
		if f := s.hook(&Call{Op: op, Group: *in.LogGroupName}); f != nil {
			return nil, f
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.groups[*in.LogGroupName]; ok {
			return nil, &Fault{Type: "ResourceAlreadyExistsException", Message: "The specified log group already exists"}
		}
		s.groups[*in.LogGroupName] = &logGroup{class: in.LogGroupClass, kmsKeyID: in.KmsKeyID, created: s.now(), streams: map[string]*logStream{}}
		return struct{}{}, nil
	case "PutRetentionPolicy":
		var in struct {
			LogGroupName    *string `json:"logGroupName"`
			RetentionInDays *int    `json:"retentionInDays"`
		}
		if f := decode(body, &in); f != nil {
			return nil, f
		}
		if f := s.checkNames(in.LogGroupName, nil, false); f != nil {
			return nil, f
		}
		if in.RetentionInDays == nil || !slices.Contains(retentionDays, *in.RetentionInDays) {
			v := "null"
			if in.RetentionInDays != nil {
				v = strconv.Itoa(*in.RetentionInDays)
			}
			return nil, &Fault{Type: "InvalidParameterException", Message: constraint(v, "retentionInDays", "Member must satisfy enum value set: [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]")}
		}
		if f := s.hook(&Call{Op: op, Group: *in.LogGroupName}); f != nil {
			return nil, f
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		g, ok := s.groups[*in.LogGroupName]
		if !ok {
			return nil, noGroup
		}
		g.retention = *in.RetentionInDays
		return struct{}{}, nil
	case "CreateLogStream":
		var in struct {
			LogGroupName  *string `json:"logGroupName"`
			LogStreamName *string `json:"logStreamName"`
		}
		if f := decode(body, &in); f != nil {
			return nil, f
		}
		if f := s.checkNames(in.LogGroupName, in.LogStreamName, true); f != nil {
			return nil, f
		}
		if f := s.hook(&Call{Op: op, Group: *in.LogGroupName, Stream: *in.LogStreamName}); f != nil {
			return nil, f
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		g, ok := s.groups[*in.LogGroupName]
		if !ok {
			return nil, noGroup
		}
		if _, ok := g.streams[*in.LogStreamName]; ok {
			return nil, &Fault{Type: "ResourceAlreadyExistsException", Message: "The specified log stream already exists"}
		}
		g.streams[*in.LogStreamName] = &logStream{created: s.now()}
		return struct{}{}, nil
	case "DescribeLogStreams":
		var in struct {
			LogGroupName        *string `json:"logGroupName"`
			LogStreamNamePrefix string  `json:"logStreamNamePrefix"`
		}
		if f := decode(body, &in); f != nil {
			return nil, f
		}
		if f := s.checkNames(in.LogGroupName, nil, false); f != nil {
			return nil, f
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		g, ok := s.groups[*in.LogGroupName]
		if !ok {
			return nil, noGroup
		}
		type desc struct {
			LogStreamName string `json:"logStreamName"`
			Arn           string `json:"arn"`
			CreationTime  int64  `json:"creationTime"`
			StoredBytes   int64  `json:"storedBytes"`
		}
		out := struct {
			LogStreams []desc `json:"logStreams"`
		}{LogStreams: []desc{}}
		for name, st := range g.streams {
			if strings.HasPrefix(name, in.LogStreamNamePrefix) {
				out.LogStreams = append(out.LogStreams, desc{LogStreamName: name, CreationTime: st.created.UnixMilli(),
					Arn: fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:log-stream:%s", s.region, Account, *in.LogGroupName, name)})
			}
		}
		sort.Slice(out.LogStreams, func(i, j int) bool { return out.LogStreams[i].LogStreamName < out.LogStreams[j].LogStreamName })
		return out, nil
	}
	return nil, &Fault{Type: "UnknownOperationException", Message: "Unknown operation Logs_20140328." + op}
}

func (s *Server) hook(c *Call) *Fault {
	sc, _, _ := s.snapshot()
	if sc.Call != nil {
		return sc.Call(c)
	}
	return nil
}

type rejectedInfo struct {
	TooNewLogEventStartIndex *int `json:"tooNewLogEventStartIndex,omitempty"`
	TooOldLogEventEndIndex   *int `json:"tooOldLogEventEndIndex,omitempty"`
	ExpiredLogEventEndIndex  *int `json:"expiredLogEventEndIndex,omitempty"`
}

func (s *Server) putLogEvents(body []byte) (any, *Fault) {
	var in struct {
		LogGroupName  *string `json:"logGroupName"`
		LogStreamName *string `json:"logStreamName"`
		LogEvents     []struct {
			Timestamp *int64  `json:"timestamp"`
			Message   *string `json:"message"`
		} `json:"logEvents"`
		SequenceToken *string `json:"sequenceToken"` // ignored, as the service does now
	}
	if f := decode(body, &in); f != nil {
		return nil, f
	}
	if f := s.checkNames(in.LogGroupName, in.LogStreamName, true); f != nil {
		return nil, f
	}
	sc, lim, now := s.snapshot()
	n := len(in.LogEvents)
	switch {
	case n == 0:
		return nil, &Fault{Type: "InvalidParameterException", Message: constraint("[]", "logEvents", "Member must have length greater than or equal to 1")}
	case n > lim.LogMaxEvents:
		return nil, &Fault{Type: "InvalidParameterException", Message: constraint("[...]", "logEvents", fmt.Sprintf("Member must have length less than or equal to %d", lim.LogMaxEvents))}
	}
	evs := make([]LogEvent, n)
	total := 0
	for i, e := range in.LogEvents {
		field := fmt.Sprintf("logEvents.%d.member", i+1)
		switch {
		case e.Timestamp == nil:
			return nil, &Fault{Type: "InvalidParameterException", Message: constraint("null", field+".timestamp", "Member must not be null")}
		case e.Message == nil:
			return nil, &Fault{Type: "InvalidParameterException", Message: constraint("null", field+".message", "Member must not be null")}
		case len(*e.Message) == 0:
			return nil, &Fault{Type: "InvalidParameterException", Message: constraint("", field+".message", "Member must have length greater than or equal to 1")}
		}
		size := len(*e.Message) + 26 // the decoder made it valid UTF-8: these are the bytes CloudWatch counts
		if size > lim.LogMaxEventBytes {
			return nil, &Fault{Type: "InvalidParameterException", Message: fmt.Sprintf("Log event too large: %d bytes exceeds limit of %d", size, lim.LogMaxEventBytes)}
		}
		total += size
		evs[i] = LogEvent{Timestamp: *e.Timestamp, Message: *e.Message}
	}
	if total > lim.LogMaxBatchBytes {
		return nil, &Fault{Type: "InvalidParameterException", Message: fmt.Sprintf("Upload too large: %d bytes exceeds limit of %d", total, lim.LogMaxBatchBytes)}
	}
	for i := 1; i < n; i++ {
		if evs[i].Timestamp < evs[i-1].Timestamp {
			return nil, &Fault{Type: "InvalidParameterException", Message: "Log events in a single PutLogEvents request must be in chronological order."}
		}
	}
	group, stream := *in.LogGroupName, *in.LogStreamName
	s.mu.Lock()
	g, ok := s.groups[group]
	var retention int
	streamOK := false
	if ok {
		retention = g.retention
		_, streamOK = g.streams[stream]
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return nil, noGroup
	case !streamOK:
		return nil, noStream
	}

	// Rejections: a prefix too old or expired, a suffix too new.
	nowMs := now.UnixMilli()
	oldEnd, expEnd, newStart := 0, 0, n
	for i, e := range evs {
		v := Accept
		switch {
		case e.Timestamp < nowMs-lim.LogMaxAge.Milliseconds():
			v = TooOld
		case retention > 0 && e.Timestamp < nowMs-int64(retention)*86400e3:
			v = Expired
		case e.Timestamp > nowMs+lim.LogMaxAhead.Milliseconds():
			v = TooNew
		}
		if v == Accept && sc.LogEvent != nil {
			v = sc.LogEvent(group, stream, e)
		}
		switch v {
		case TooOld:
			oldEnd = i + 1
		case Expired:
			expEnd = i + 1
		case TooNew:
			newStart = min(newStart, i)
		}
	}
	from := max(oldEnd, expEnd)
	to := max(newStart, from)
	if to > from && time.Duration(evs[to-1].Timestamp-evs[from].Timestamp)*time.Millisecond > lim.LogMaxSpan {
		return nil, &Fault{Type: "InvalidParameterException", Message: "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."}
	}
	if sc.Call != nil {
		if f := sc.Call(&Call{Op: "PutLogEvents", Group: group, Stream: stream, Events: evs}); f != nil {
			return nil, f
		}
	}
	s.mu.Lock()
	if st := s.groups[group].streams[stream]; st != nil && !s.discard {
		st.events = append(st.events, evs[from:to]...)
	}
	s.mu.Unlock()

	out := struct {
		NextSequenceToken     string        `json:"nextSequenceToken"`
		RejectedLogEventsInfo *rejectedInfo `json:"rejectedLogEventsInfo,omitempty"`
	}{NextSequenceToken: fmt.Sprintf("%056d", reqSeq.Add(1))}
	if oldEnd > 0 || expEnd > 0 || newStart < n {
		ri := &rejectedInfo{}
		if oldEnd > 0 {
			ri.TooOldLogEventEndIndex = &oldEnd
		}
		if expEnd > 0 {
			ri.ExpiredLogEventEndIndex = &expEnd
		}
		if newStart < n {
			ri.TooNewLogEventStartIndex = &newStart
		}
		out.RejectedLogEventsInfo = ri
	}
	return out, nil
}

// CreateLogGroup creates a log group (retention in days, 0 for none) as
// if the API had.
func (s *Server) CreateLogGroup(name string, retention int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[name] == nil {
		s.groups[name] = &logGroup{created: s.now(), streams: map[string]*logStream{}}
	}
	s.groups[name].retention = retention
}

// CreateLogStream creates a log stream (and its group) as if the API had.
func (s *Server) CreateLogStream(group, stream string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[group] == nil {
		s.groups[group] = &logGroup{created: s.now(), streams: map[string]*logStream{}}
	}
	if s.groups[group].streams[stream] == nil {
		s.groups[group].streams[stream] = &logStream{created: s.now()}
	}
}

// LogGroup describes a stored log group.
type LogGroup struct {
	Name            string
	RetentionInDays int
	Class, KMSKeyID string
	Streams         []string // sorted
}

// LogGroups returns the log groups, sorted by name.
func (s *Server) LogGroups() []LogGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LogGroup
	for name, g := range s.groups {
		lg := LogGroup{Name: name, RetentionInDays: g.retention, Class: g.class, KMSKeyID: g.kmsKeyID}
		for st := range g.streams {
			lg.Streams = append(lg.Streams, st)
		}
		sort.Strings(lg.Streams)
		out = append(out, lg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LogEvents returns the events stored in a stream, in arrival order.
func (s *Server) LogEvents(group, stream string) []LogEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[group]; g != nil {
		if st := g.streams[stream]; st != nil {
			return slices.Clone(st.events)
		}
	}
	return nil
}

// StoredLogEvent is a stored event with its group and stream.
type StoredLogEvent struct {
	Group, Stream string
	LogEvent
}

// AllLogEvents returns every stored event, by group, stream and arrival.
func (s *Server) AllLogEvents() []StoredLogEvent {
	var out []StoredLogEvent
	for _, g := range s.LogGroups() {
		for _, st := range g.Streams {
			for _, e := range s.LogEvents(g.Name, st) {
				out = append(out, StoredLogEvent{Group: g.Name, Stream: st, LogEvent: e})
			}
		}
	}
	return out
}
