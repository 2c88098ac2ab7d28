// Package bintest runs a command-line binary the way a user does, for the
// end-to-end tests of dray and of binaries built on node/cli: build it
// once, find an address where no node answers, run it and collect its
// output and exit code.
//
//	bin, remove, err := bintest.Build(".", "dray")
//	...
//	out, errOut, code := bintest.Run(t, exec.Command(bin, "functions"))
package bintest
