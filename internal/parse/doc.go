// Package parse converts log lines into record fields: json, logfmt
// (also Go's slog and logrus text), a user's regex, and hand-written
// scanners for nginx and Apache access logs, syslog (RFC 3164 and 5424)
// and klog.
//
// # Invariants
//
//   - A Parser belongs to one goroutine (the input's reader of one
//     stream); New returns a fresh one, nothing is shared between them
//     but read-only configuration.
//   - Parse either accepts the line (true) and holds its fields as
//     msgpack key/value pairs, Len of them, no map header, or rejects it
//     (false) and holds no fields and no time: the caller keeps the raw
//     field and marks the event with parse_error. A line is never
//     half-parsed, and no input makes Parse panic (fuzzed).
//   - No key is held twice (the first member wins) and none that is in
//     the skip set (the record's own keys). A line may produce at most
//     MaxFields members: a logfmt line with more is rejected, a regex
//     with more named groups refused by New. json keeps package record's
//     bound instead (repeats are dropped among the first 256 members).
//   - What Pairs and Value return is valid until the next Parse.
//   - Zero allocations after warm-up for every parser but regex (which
//     allocates one slice per match: package regexp has no call that
//     reuses one) and for Go layouts other than RFC 3339 and the access
//     log's, which go through time.ParseInLocation. Rejected lines do not
//     allocate either.
//
// # Time
//
// Parse also takes the event time from the line when the parser has a
// time field (Config.TimeKey, or the built-in's header time); Time
// returns it in Unix ns. A time field that converted is removed from the
// fields unless Config.KeepTimeKey (the event time carries it, as with
// Fluent Bit's Time_Keep off); one that did not convert is kept as text
// and Time reports false. Times without an offset are in Config.TimeZone
// (default UTC). RFC 3164 and klog times have no year: the year is the
// latest of next, this and last year (in TimeZone) that puts the time at
// most 7 days in the future, so a December line read in January is last
// year's, and a January line read on 31 December next year's.
//
// Layouts: rfc3339 and rfc3339nano (the same parser: any fraction, 'T' or
// a space between date and time, Z or an offset, none meaning TimeZone),
// unix, unix_ms, unix_us, unix_ns (digits, an optional fraction), or a Go
// layout. The default, auto, takes RFC 3339 text or a number of seconds.
// Config.Types "time:<layout>" stores a msgpack timestamp (ext -1).
//
// # Fields
//
// Field names follow Fluent Bit's parsers.conf where it has the parser.
// Numbers (code, size, pri, pid) are msgpack ints; every other field is a
// str as it appears in the line. An empty field, and in the access logs and
// RFC 5424 a "-" (NILVALUE), produces no member rather than a nil.
//
// nginx and apache (the same scanner; common format, then combined):
//
//	remote - user [time] "request" status size ["referer" "agent" ["forwarded_for"]]
//
//	field          nginx            apache     note
//	remote         $remote_addr     -
//	host           the 2nd word     %h         nginx writes "-": absent
//	ident          -                %l
//	user           $remote_user     %u
//	time           $time_local      %t         02/Jan/2006:15:04:05 -0700
//	method         $request         %r         first word of the request
//	path                                       the words between
//	protocol                                   the last word, if HTTP/...
//	code           $status          %>s        int
//	size           $body_bytes_sent %b         int
//	referer        $http_referer    %{Referer}i
//	agent          $http_user_agent %{User-agent}i
//	forwarded_for  $http_x_forwarded_for       the nginx image's "main" format
//
// In quoted fields \" and \\ are decoded; other escapes (nginx's \xHH)
// are kept as written. A request of "-" gives no method, path or
// protocol.
//
// syslog_rfc3164 ("[<PRI>]TIMESTAMP [HOST] [IDENT[[PID]]:] MESSAGE";
// without PRI as local daemons write files; TIMESTAMP "Oct 11 22:14:15"
// or RFC 3339):
//
//	pri      int, if there is a PRI
//	time     as written
//	host     the word before the tag, if any
//	ident    the tag: a word ending with ':', or IDENT[PID]
//	pid      int
//	message  the rest (one space after the tag skipped)
//
// syslog_rfc5424 ("<PRI>1 TIMESTAMP HOST APP-NAME PROCID MSGID SD [MSG]"):
//
//	pri        int
//	time       the TIMESTAMP, RFC 3339
//	host       HOSTNAME
//	ident      APP-NAME
//	pid        PROCID: an int if it is digits, else a str
//	msgid      MSGID
//	extradata  STRUCTURED-DATA as written ([id k="v"]..., escapes kept)
//	message    MSG, a leading UTF-8 BOM removed
//
// syslog picks RFC 5424 when the line starts "<PRI>1 ", else RFC 3164.
//
// klog ("Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg"):
//
//	severity  I, W, E or F
//	time      mmdd hh:mm:ss.uuuuuu
//	pid       the thread id, int
//	source    file:line
//	message   the rest, as written (klog's structured "msg" k=v kept)
//
// logfmt: key=value pairs separated by spaces or tabs; a key or value
// may be double-quoted with Go's escapes (slog and logrus quote with
// strconv.Quote). Every value is a str unless Types converts it. Each
// pair needs '=': a bare word rejects the line, and so does a line with
// no pair, so plain text is not taken for logfmt. The time is the first
// member named time or ts (or TimeKey).
//
// regex: each named group that took part in the match is a str field
// (or converted by Types); unnamed groups are ignored. The match may
// start anywhere: anchor the pattern to match whole lines.
//
// json: record.Fields (see package record), plus TimeKey: its value may
// be text or, with the auto and unix layouts, a number.
package parse
