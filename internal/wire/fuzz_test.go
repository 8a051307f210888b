package wire

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func FuzzReadRequest(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(fixtureDir, "*.client.bin"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range requestCorpus(f) {
		f.Add(b)
	}
	f.Add(unhex(f, "94 a3 617070 d7 00 6553f100 075bcd15 81 a3 6c6f67 a2 6869 81 a5 6368756e6b a1 41"))
	f.Add(unhex(f, "92 a3 617070 91 92 92 d7 00 6553f100 00000000 80 81 a3 6c6f67 a1 61"))

	const maxBytes, maxDecompressed = 1 << 16, 1 << 16
	f.Fuzz(func(t *testing.T, b []byte) {
		var scratch []byte
		for rest := b; len(rest) > 0; {
			req, n, err := ReadRequest(rest, maxBytes)
			if err == ErrShort || n == 0 {
				if n != 0 || (err != ErrShort && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed)) {
					t.Fatalf("n %d with err %v", n, err)
				}
				break
			}
			if n > len(rest) || n > maxBytes {
				t.Fatalf("n %d beyond input %d or cap", n, len(rest))
			}
			if err != nil {
				if !errors.Is(err, ErrNotArray) && !errors.Is(err, ErrInvalidRequest) {
					t.Fatalf("skippable error expected, got %v", err)
				}
				rest = rest[n:]
				continue
			}
			if n <= 4096 {
				if _, _, err := ReadRequest(rest[:n-1], maxBytes); err != ErrShort {
					t.Fatalf("prefix of a %d-byte request: %v, want ErrShort", n, err)
				}
			}
			scratch, _, err = req.Events(scratch, maxDecompressed, func(ns int64, rec []byte) error {
				if l, err := valueLen(rec, 0); err != nil || l != len(rec) || !isMap(rec[0]) {
					t.Fatalf("record % x is not one map", rec)
				}
				LookupString(rec, []byte("log"))
				return nil
			})
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Events: %v", err)
			}
			if cap(scratch) > maxDecompressed+1 {
				t.Fatalf("scratch grew to %d, cap %d", cap(scratch), maxDecompressed)
			}
			rest = rest[n:]
		}

		// The other readers must not panic either.
		_, _, _ = ReadPing(b)
		_, _, _ = ReadHelo(b)
		_, _, _ = ReadPong(b)
		_, _, _ = ParseAck(b)
		_ = ForEachEntry(b, func(int64, []byte) error { return nil })

		// The scanner agrees with msgp.Skip.
		l, err := valueLen(b, 0)
		left, serr := msgp.Skip(b)
		switch {
		case err == nil:
			if serr != nil || len(b)-len(left) != l {
				t.Fatalf("valueLen %d, msgp.Skip %d %v", l, len(b)-len(left), serr)
			}
		case err == ErrShort:
			if serr != msgp.ErrShortBytes {
				t.Fatalf("valueLen short, msgp.Skip %v", serr)
			}
		default:
			var ip msgp.InvalidPrefixError
			if !errors.As(serr, &ip) && !errors.Is(serr, msgp.ErrRecursion) {
				t.Fatalf("valueLen %v, msgp.Skip %v", err, serr)
			}
		}
	})
}
