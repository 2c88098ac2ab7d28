package node

import (
	"os"
	"testing"
)

// TestMain runs every test of the package with the scheduler checking its
// invariants after each event and with events it refuses as panics, so a
// node that drives it wrong fails loudly here.
func TestMain(m *testing.M) {
	checkSched = true
	os.Exit(m.Run())
}
