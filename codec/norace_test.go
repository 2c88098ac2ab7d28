//go:build !race

package codec

// raceEnabled is true when tests run under the race detector, which changes
// how much memory the runtime allocates.
const raceEnabled = false
