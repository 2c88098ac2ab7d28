package node

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs every test of the package with the scheduler checking its
// invariants after each event and with events it refuses as panics, so a
// node that drives it wrong fails loudly here. Benchmarks run without
// the checks, as a node does.
func TestMain(m *testing.M) {
	flag.Parse()
	checkSched = flag.Lookup("test.bench").Value.String() == ""
	os.Exit(m.Run())
}
