package node_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeExample: the Go program in the README's "Go API" section is
// Example (node/example_test.go) line for line, as the README says.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	example, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	body := func(src, section, fn string) string {
		t.Helper()
		s := string(src)
		at := strings.Index(s, section)
		require.GreaterOrEqual(t, at, 0, "no %q", section)
		start := strings.Index(s[at:], fn)
		require.GreaterOrEqual(t, start, 0, "no %q after %q", fn, section)
		s = s[at+start+len(fn):]
		end := strings.Index(s, "\n}\n")
		require.GreaterOrEqual(t, end, 0, "%q does not end", fn)
		var lines []string
		for _, l := range strings.Split(s[:end], "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "// Output:") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	want := body(string(example), "package node_test", "func Example() {\n")
	got := body(string(readme), "## Go API", "func main() {\n")
	require.Equal(t, want, got, "README's Go API program differs from Example")
}
