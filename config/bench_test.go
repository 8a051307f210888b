package config

import (
	"os"
	"testing"
)

func BenchmarkParseFull(b *testing.B) {
	data, err := os.ReadFile("testdata/full.good.yml")
	if err != nil {
		b.Fatal(err)
	}
	env := lookupIn(testEnv)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseWithEnv(data, "full.good.yml", env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseBad(b *testing.B) {
	data, err := os.ReadFile("testdata/unknown_field.bad.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseWithEnv(data, "unknown_field.bad.yml", nil); err == nil {
			b.Fatal("no error")
		}
	}
}
