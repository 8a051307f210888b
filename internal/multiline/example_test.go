package multiline_test

import (
	"fmt"
	"time"

	"github.com/sluice-agent/sluice/internal/multiline"
)

// A file input keeps one Joiner per (file, stream). Tags are file
// offsets: a line's start and the offset after its "\n". The offset the
// input may commit stays at or before Pending.
func Example() {
	j, err := multiline.New(multiline.Config{Rules: []string{"java"}})
	if err != nil {
		panic(err)
	}
	file := []string{
		"INFO  starting",
		"java.lang.IllegalStateException: no stock row",
		"\tat Shop.load(Shop.java:19)",
		"\tat Shop.main(Shop.java:60)",
		"INFO  GET /health 200",
	}
	var out []multiline.Event
	var off int64
	for _, l := range file {
		end := off + int64(len(l)) + 1
		out = j.Add(out[:0], []byte(l), off, end, time.Now().UnixNano())
		for _, e := range out {
			fmt.Printf("event %d-%d, %d lines: %q\n", e.Start, e.End, e.Lines, e.Line)
		}
		commit := end
		if p, ok := j.Pending(); ok {
			commit = p
		}
		fmt.Println("commit", commit)
		off = end
	}
	// At the end of the file, or when Flush finds the group idle:
	out = j.Flush(out[:0], time.Now(), true)
	fmt.Println(len(out), "more")
	// Output:
	// event 0-15, 1 lines: "INFO  starting"
	// commit 15
	// commit 15
	// commit 15
	// commit 15
	// event 15-117, 3 lines: "java.lang.IllegalStateException: no stock row\n\tat Shop.load(Shop.java:19)\n\tat Shop.main(Shop.java:60)"
	// event 117-139, 1 lines: "INFO  GET /health 200"
	// commit 139
	// 0 more
}
