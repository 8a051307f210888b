package main

import (
	"os"
	"testing"
)

func createFile(path string) (*os.File, error) { return os.Create(path) }

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
