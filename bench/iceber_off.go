//go:build !iceber

package main

import (
	"errors"
	"io"
)

// icebarBuilt reports whether the iceber case is compiled in.
const icebarBuilt = false

func icebergCase(o options, log io.Writer) ([]row, error) {
	return nil, errors.New("not built: run go run -tags iceber -ldflags=-checklinkname=0 ./bench -cases iceber")
}
