// Package builtin holds the remote functions every dray binary offers:
// add, sum, len, fib, sleep, whoami, sha256, bytes, nd.rand, nd.matmul and
// nd.sum. They serve the quick start, the tests and the benchmarks, and
// show how to write remote functions.
//
// See Example for a node that runs them.
package builtin
