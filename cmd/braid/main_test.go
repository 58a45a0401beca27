package main

import (
	"bytes"
	"io"
)

// runFunc is a command's entry point, as in the commands table.
type runFunc func(args []string, stdout, stderr io.Writer) error

// runCmd runs a command in-process and returns what it wrote.
func runCmd(run runFunc, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = run(args, &out, &errOut)
	return out.String(), errOut.String(), err
}
