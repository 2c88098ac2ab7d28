package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/node"
)

// TestMain isolates the commands the tests run in process: no DRAY_API or
// token, a default API address where nothing answers, and a data
// directory of their own.
func TestMain(m *testing.M) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "dray-cli-")
	if err != nil {
		panic(err)
	}
	os.Unsetenv("DRAY_API")
	os.Unsetenv("DRAY_API_TOKEN")
	os.Setenv("DRAY_DEFAULT_API", dead)
	os.Setenv("DRAY_DATA", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// execute runs the command line of reg with args in process and returns
// its output and its error line ("" on success).
func execute(t *testing.T, reg *node.Registry, opts []Option, args ...string) (out, errLine string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := Command(&stdout, &stderr, reg, opts...)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		errLine = errorLine(root.Name(), err)
	}
	return stdout.String(), errLine
}

// wordCount is a registry with a function of its own.
func wordCount(t *testing.T) *node.Registry {
	t.Helper()
	reg := node.NewRegistry()
	require.NoError(t, reg.Register("wc.count", func(text string) map[string]int {
		counts := map[string]int{}
		for _, w := range strings.Fields(text) {
			counts[w]++
		}
		return counts
	}, node.Deterministic()))
	return reg
}

func TestFunctionsOfProgram(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reg      *node.Registry
		opts     []Option
		want     []string
		wantNone []string
	}{
		{"nil registry", nil, nil, []string{"add(int64, int64) int64", "nd.sum(ndarray) float64"}, []string{"wc.count"}},
		{"own and built-ins", wordCount(t), nil, []string{"wc.count(string) map[string]int", "add(int64, int64) int64"}, nil},
		{"without built-ins", wordCount(t), []Option{WithoutBuiltins()}, []string{"wc.count(string) map[string]int"}, []string{"add(", "fib("}},
		{"nil registry without built-ins", nil, []Option{WithoutBuiltins()}, nil, []string{"add("}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errLine := execute(t, tc.reg, tc.opts, "functions")
			require.Empty(t, errLine)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
			for _, w := range tc.wantNone {
				assert.NotContains(t, out, w)
			}
		})
	}
}

// TestRegistryTwice: two command lines over one registry add the
// built-ins once (the second would otherwise fail on duplicate names).
func TestRegistryTwice(t *testing.T) {
	reg := wordCount(t)
	for range 2 {
		out, errLine := execute(t, reg, nil, "functions")
		require.Empty(t, errLine)
		assert.Contains(t, out, "wc.count(")
		assert.Contains(t, out, "add(")
	}
}

// TestBuiltinNameTaken: a program function named as a built-in fails the
// commands that need the functions, in one line that names it and says
// what to do; WithoutBuiltins runs it.
func TestBuiltinNameTaken(t *testing.T) {
	reg := node.NewRegistry()
	require.NoError(t, reg.Register("add", func(a, b string) string { return a + b }))
	out, errLine := execute(t, reg, []Option{Name("concat")}, "functions")
	assert.Empty(t, out)
	assert.Contains(t, errLine, `concat: register built-in functions: node: register "add": a function is already registered`)
	assert.Contains(t, errLine, "cli.WithoutBuiltins")
	out, errLine = execute(t, reg, []Option{WithoutBuiltins()}, "functions")
	require.Empty(t, errLine)
	assert.Contains(t, out, "add(string, string) string")
}

// TestRunOwnFunction runs a program's function on an in-process peer.
func TestRunOwnFunction(t *testing.T) {
	out, errLine := execute(t, wordCount(t), []Option{WithoutBuiltins()}, "--data", t.TempDir(), "run", "wc.count", `"a b a"`)
	require.Empty(t, errLine)
	assert.Equal(t, `{"a":2,"b":1}`+"\n", out)
	_, errLine = execute(t, wordCount(t), []Option{WithoutBuiltins(), Name("wordcount")}, "--data", t.TempDir(), "run", "wc.count")
	assert.Equal(t, "wordcount: wc.count takes 1 argument(s), got 0 (usage: wordcount run wc.count(string) map[string]int)", errLine)
}

// TestName: help and error lines name the program where they name the
// binary, and say "dray" where they mean dray itself.
func TestName(t *testing.T) {
	_, errLine := execute(t, nil, []Option{Name("wordcount")}, "frobnicate")
	assert.Equal(t, "wordcount: unknown command \"frobnicate\": see `wordcount --help`", errLine)
	_, errLine = execute(t, nil, []Option{Name("wordcount")}, "stats")
	assert.Contains(t, errLine, "wordcount: no dray node at ")
	assert.Contains(t, errLine, ": start one with `wordcount node`")
	_, errLine = execute(t, nil, []Option{Name("wordcount")}, "run", "--on", "nobody", "add", "1", "2")
	assert.Equal(t, "wordcount: --on \"nobody\": not a peer ID (`wordcount peers` lists them)", errLine)

	help, errLine := execute(t, nil, []Option{Name("wordcount")}, "help", "node")
	require.Empty(t, errLine)
	assert.Contains(t, help, "Start a dray peer:")
	assert.Contains(t, help, "  wordcount node --listen /ip4/0.0.0.0/tcp/4001")
	assert.Contains(t, help, "wordcount node [flags]")
	assert.NotContains(t, help, "dray node")
	help, _ = execute(t, nil, []Option{Name("wordcount")}, "help", "free")
	assert.Contains(t, help, "(wordcount submit,\nwordcount put, wordcount fetch)")
	assert.Contains(t, help, "xargs wordcount free")
	help, _ = execute(t, nil, []Option{Name("wordcount")}, "--help")
	assert.Contains(t, help, "Make a new private swarm key (for wordcount node --swarm-key)")
	assert.Contains(t, help, "wordcount is a dray peer with its own functions.")

	help, _ = execute(t, nil, []Option{Name("dray")}, "help", "free")
	assert.Contains(t, help, "(dray submit,\ndray put, dray fetch)")
}

// TestDefaultName: without Name the program is os.Args[0]'s base name.
func TestDefaultName(t *testing.T) {
	want := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
	assert.Equal(t, want, Command(nil, nil, nil).Name())
	assert.Equal(t, "wordcount", Command(nil, nil, nil, Name("wordcount")).Name())
}

// TestNodeResourcesFlag: --resources takes name=quantity pairs and
// refuses a negative quantity before the node starts.
func TestNodeResourcesFlag(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"gpu=-1", `resource "gpu"=-1`},
		{"gpu", "--resources"},
	} {
		var out bytes.Buffer
		cmd := Command(&out, &out, nil)
		cmd.SetArgs([]string{"node", "--api", "127.0.0.1:0", "--data", t.TempDir(), "--resources", tc.arg})
		err := cmd.Execute()
		require.Error(t, err, tc.arg)
		assert.Contains(t, err.Error(), tc.want)
	}
}

// TestRunNeed: --need adds resources a call needs; a need no peer has
// fails at once and names it.
func TestRunNeed(t *testing.T) {
	var out bytes.Buffer
	cmd := Command(&out, &out, nil)
	cmd.SetArgs([]string{"run", "--data", t.TempDir(), "--need", "gpu=1", "add", "1", "2"})
	err := cmd.Execute()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gpu=1")
	assert.Contains(t, err.Error(), "no peer")
}
