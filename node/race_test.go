//go:build race

package node_test

// raceEnabled is true when the tests run under the race detector, which
// slows the scheduler's hot path about tenfold.
const raceEnabled = true
