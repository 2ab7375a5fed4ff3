//go:build linux && !iceber

package main

import (
	"errors"
	"io"
)

// iceberBuilt reports whether the iceber case is compiled in.
const iceberBuilt = false

func icebergCase(o options, log io.Writer) ([]row, error) {
	return nil, errors.New("not built: run go run -tags iceber -ldflags=-checklinkname=0 ./bench -cases iceber")
}
