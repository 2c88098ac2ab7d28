package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFreeForgets: `dray free CID` makes the node forget the value at once:
// `dray get CID` then fails with "unknown ref" (it used to print the value
// until a GC ran), and a second free says "not kept".
func TestFreeForgets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dray node process")
	}
	p := startPeer(t)
	in := filepath.Join(t.TempDir(), "in.bin")
	require.NoError(t, os.WriteFile(in, []byte("free me"), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		want string // what get prints before the free
	}{
		{"put", []string{"put", in}, `{"/":{"bytes":"ZnJlZSBtZQ"}}`},
		{"submit", []string{"submit", "add", "20", "22"}, "42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := strings.TrimSpace(ok(t, p.api, tc.args...))
			assert.Equal(t, tc.want+"\n", ok(t, p.api, "get", c))
			assert.Equal(t, c+" freed\n", ok(t, p.api, "free", c))
			out, errOut, code := at(t, p.api, "get", c)
			assert.NotEqual(t, 0, code, "get after free printed %q", out)
			assert.Contains(t, errOut, "unknown ref")
			assert.Contains(t, errOut, c)
			assert.Equal(t, c+" not kept\n", ok(t, p.api, "free", c))
		})
	}
}
