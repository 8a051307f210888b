package parse

import (
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
)

// benchLines are realistic lines of each parser (a Chrome user agent, a
// CRON and an sshd syslog line, a client-go klog line, an slog line...).
var benchLines = []struct {
	name string
	c    Config
	line string
}{
	{"nginx", Config{Type: "nginx"}, `2001:db8:85a3::8a2e:370:7334 - - [15/Jun/2025:09:12:44 +0000] "GET /api/v1/items?id=42&sort=desc HTTP/2.0" 200 1532 "https://shop.example.com/cart" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"`},
	{"nginx_escaped", Config{Type: "nginx"}, `198.51.100.2 - - [15/Jun/2025:09:12:50 +0000] "GET /a\"b\\c HTTP/1.1" 404 153 "https://ref.example/\"x\"" "agent with \"quotes\""`},
	{"apache_common", Config{Type: "apache"}, `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`},
	{"syslog3164", Config{Type: "syslog"}, `<38>Jun 14 23:59:58 web-01 sshd[2201]: Accepted publickey for deploy from 203.0.113.5 port 51234 ssh2: ED25519 SHA256:Wq1vC6Vx0ZL7B9n9o0m2zrS0mH8cQ2b1yYtK3nO4pU8`},
	{"syslog3164_file", Config{Type: "syslog_rfc3164"}, `Jun 15 06:25:01 web-01 CRON[123456]: (root) CMD (test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily ))`},
	{"syslog5424", Config{Type: "syslog"}, `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry...`},
	{"klog", Config{Type: "klog"}, `E0615 10:15:17.123456      17 leaderelection.go:330] error retrieving resource lock kube-system/kube-scheduler: Get "https://10.96.0.1:443/api": dial tcp 10.96.0.1:443: connect: connection refused`},
	{"logfmt_slog", Config{Type: "logfmt"}, `time=2025-06-15T10:00:01.5Z level=WARN msg="slow request" method=GET path=/api/v1/items dur=1.234s user=42 trace=4bf92f3577b34da6a3ce929d0e0e4736`},
	{"logfmt_logrus", Config{Type: "logfmt", Types: map[string]string{"number": "int"}}, `time="2015-03-26T01:27:38-04:00" level=warning msg="The group's number increased tremendously!" number=122 omg=true`},
	{"json", Config{Type: "json", TimeKey: "time"}, `{"level":"info","time":"2024-01-02T03:04:05.123Z","msg":"GET /api/v1/orders/12345 200","user":42,"ms":12.3,"trace":"4bf92f3577b34da6a3ce929d0e0e4736","ok":true}`},
	// Fluent Bit's nginx regex, for comparison with the hand scanner.
	{"regex_nginx", Config{Type: "regex", TimeKey: "time", TimeLayout: clfLayout, Types: map[string]string{"code": "int", "size": "int"},
		Pattern: `^(?P<remote>[^ ]*) (?P<host>[^ ]*) (?P<user>[^ ]*) \[(?P<time>[^\]]*)\] "(?P<method>\S+)(?: +(?P<path>[^\"]*?)(?: +\S*)?)?" (?P<code>[^ ]*) (?P<size>[^ ]*)(?: "(?P<referer>[^\"]*)" "(?P<agent>[^\"]*)")?$`},
		`2001:db8:85a3::8a2e:370:7334 - - [15/Jun/2025:09:12:44 +0000] "GET /api/v1/items?id=42&sort=desc HTTP/2.0" 200 1532 "https://shop.example.com/cart" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"`},
}

// BenchmarkParse parses one realistic line per parser, with the docker
// input's record keys as the skip set.
func BenchmarkParse(b *testing.B) {
	skip := record.NewKeys("log", "stream")
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) {
			c := bl.c
			c.now = func() time.Time { return goldenNow }
			p, err := New(c)
			if err != nil {
				b.Fatal(err)
			}
			line := []byte(bl.line)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if !p.Parse(line, skip) {
					b.Fatal("not parsed")
				}
			}
		})
	}
}
