package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fwdOpts are the Forward link settings a scenario uses on both ends.
type fwdOpts struct {
	Ack       bool   // require an ack per chunk
	Gzip      bool   // CompressedPackedForward
	SharedKey string // handshake with this key ("" none)
	TLS       *certs // TLS, with the server certificate of certs
	// Legacy makes Fluent Bit's forward output send [time, record] entries
	// (Retain_Metadata_In_Forward_Mode off) instead of its default
	// [[time, metadata], record].
	Legacy bool
}

// peerServer is one destination of a peer's forward output.
type peerServer struct {
	Port    int
	Standby bool
}

// Host names of the handshake (self_hostname) of each party.
const (
	fluentdServerName   = "fluentd-server"
	fluentdClientName   = "fluentd-client"
	fluentBitServerName = "fluent-bit-server"
	fluentBitClientName = "fluent-bit-client"
	sluiceServerName    = "sluice-server"
	sluiceClientName    = "sluice-client"
)

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fluentdReceiverConf is a Fluentd in_forward on 127.0.0.1:port whose events
// (tags interop.**) go to out_stdout, that is to Fluentd's log, one line
// "<time> <tag>: <record JSON>" each. out_stdout is unbuffered: the line is
// written and flushed before in_forward sends the ack, so what Fluentd acked
// is in its log even after a kill -9.
func fluentdReceiverConf(port int, o fwdOpts) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("<system>")
	p("  log_level info")
	p("</system>")
	p("<source>")
	p("  @type forward")
	p("  bind 127.0.0.1")
	p("  port %d", port)
	if o.TLS != nil {
		p("  <transport tls>")
		p("    cert_path %s", o.TLS.Cert)
		p("    private_key_path %s", o.TLS.Key)
		p("  </transport>")
	}
	if o.SharedKey != "" {
		p("  <security>")
		p("    self_hostname %s", fluentdServerName)
		p("    shared_key %s", o.SharedKey)
		p("  </security>")
	}
	p("</source>")
	p("<match interop.**>")
	p("  @type stdout")
	p("</match>")
	return b.String()
}

// fluentBitReceiverConf is a Fluent Bit forward input on 127.0.0.1:port
// whose events go to <outDir>/out.jsonl, one record JSON per line. With
// storageDir the input buffers its chunks in files there (storage.type
// filesystem), and a restart on the same storageDir flushes what a killed
// process had acked but not yet written out.
func fluentBitReceiverConf(port int, o fwdOpts, outDir, storageDir string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("[SERVICE]")
	p("    Flush        0.2")
	p("    Grace        1")
	p("    Log_Level    info")
	if storageDir != "" {
		p("    storage.path %s", storageDir)
		p("    storage.sync normal")
		p("    storage.backlog.mem_limit 50M")
	}
	p("[INPUT]")
	p("    Name         forward")
	if storageDir != "" {
		p("    storage.type filesystem")
	}
	p("    Listen       127.0.0.1")
	p("    Port         %d", port)
	if o.SharedKey != "" {
		p("    Shared_Key   %s", o.SharedKey)
		p("    Self_Hostname %s", fluentBitServerName)
	}
	if o.TLS != nil {
		p("    tls          on")
		p("    tls.verify   off")
		p("    tls.crt_file %s", o.TLS.Cert)
		p("    tls.key_file %s", o.TLS.Key)
	}
	p("[OUTPUT]")
	p("    Name         file")
	p("    Match        *")
	p("    Path         %s", outDir)
	p("    File         out.jsonl")
	p("    Format       plain")
	return b.String()
}

// fluentdSenderConf tails the JSON lines of input (in_tail from the head)
// and sends them with out_forward to the servers: host "localhost" with
// TLS (tls_verify_hostname needs a name), 127.0.0.1 otherwise.
func fluentdSenderConf(input, posFile string, servers []peerServer, o fwdOpts) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("<system>")
	p("  log_level info")
	p("</system>")
	p("<source>")
	p("  @type tail")
	p("  path %s", input)
	p("  pos_file %s", posFile)
	p("  read_from_head true")
	p("  refresh_interval 1")
	p("  tag interop.fluentd")
	p("  <parse>")
	p("    @type json")
	p("  </parse>")
	p("</source>")
	p("<match interop.**>")
	p("  @type forward")
	p("  require_ack_response %v", o.Ack)
	p("  ack_response_timeout 10s")
	if o.Gzip {
		p("  compress gzip")
	}
	p("  heartbeat_interval 0.5")
	p("  recover_wait 1")
	p("  hard_timeout 2")
	host := "127.0.0.1"
	if o.TLS != nil {
		host = "localhost"
		p("  transport tls")
		p("  tls_cert_path %s", o.TLS.CA)
		p("  tls_verify_hostname true")
	}
	if o.SharedKey != "" {
		p("  <security>")
		p("    self_hostname %s", fluentdClientName)
		p("    shared_key %s", o.SharedKey)
		p("  </security>")
	}
	for i, s := range servers {
		p("  <server>")
		p("    name s%d", i)
		p("    host %s", host)
		p("    port %d", s.Port)
		if s.Standby {
			p("    standby true")
		}
		p("  </server>")
	}
	p("  <buffer>")
	p("    @type memory")
	p("    flush_mode interval")
	p("    flush_interval 0.2s")
	p("    chunk_limit_size 256k")
	p("    retry_type periodic")
	p("    retry_wait 0.5s")
	p("    retry_forever true")
	p("  </buffer>")
	p("</match>")
	return b.String()
}

// fluentBitSenderConf tails the JSON lines of input (from the head, parsed
// as JSON) and sends them with the forward output to 127.0.0.1:port. It
// writes the parsers file next to conf.
func fluentBitSenderConf(t *testing.T, dir, input string, port int, o fwdOpts) string {
	parsers := writeFile(t, filepath.Join(dir, "parsers.conf"), "[PARSER]\n    Name   json\n    Format json\n")
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("[SERVICE]")
	p("    Flush        0.2")
	p("    Grace        1")
	p("    Log_Level    info")
	p("    Parsers_File %s", parsers)
	p("[INPUT]")
	p("    Name         tail")
	p("    Path         %s", input)
	p("    Read_from_Head On")
	p("    Refresh_Interval 1")
	p("    Parser       json")
	p("    Tag          interop.fluent-bit")
	p("[OUTPUT]")
	p("    Name         forward")
	p("    Match        *")
	p("    Host         127.0.0.1")
	p("    Port         %d", port)
	p("    Retry_Limit  no_limits")
	if o.Ack {
		p("    Send_options On")
		p("    Require_ack_response On")
	}
	if o.Gzip {
		p("    Compress     gzip")
	}
	if o.SharedKey != "" {
		p("    Shared_Key   %s", o.SharedKey)
		p("    Self_Hostname %s", fluentBitClientName)
	}
	if o.TLS != nil {
		p("    tls          on")
		p("    tls.verify   on")
		p("    tls.verify_hostname on")
		p("    tls.ca_file  %s", o.TLS.CA)
		p("    tls.vhost    localhost")
	}
	if o.Legacy {
		p("    Retain_Metadata_In_Forward_Mode off")
	}
	return b.String()
}

// writeSeqLines appends lines {"src":src,"seq":k,"pad":"..."} for k in
// [from, from+n) to path.
func writeSeqLines(t *testing.T, path, src string, from, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pad := strings.Repeat("x", 80)
	var b strings.Builder
	for k := from; k < from+n; k++ {
		fmt.Fprintf(&b, `{"src":%q,"seq":%d,"pad":%q}`+"\n", src, k, pad)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}
