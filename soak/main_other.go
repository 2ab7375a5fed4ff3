//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "soak: uringsend's engine runs on Linux only")
	os.Exit(1)
}
