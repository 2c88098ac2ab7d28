package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/internal/bintest"
)

var (
	bin string
	// deadAPI is an address where no node answers: the default API
	// address of the commands the tests run.
	deadAPI string
)

// TestMain builds the wordcount binary once; the tests run it as a user
// would.
func TestMain(m *testing.M) {
	b, remove, err := bintest.Build(".", "wordcount")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = b
	if deadAPI, err = bintest.DeadAddr(); err != nil {
		panic(err)
	}
	code := m.Run()
	remove()
	os.Exit(code)
}

// command is the wordcount binary with args, an environment of its own
// (no DRAY_API or token, the default API address deadAPI) and a data
// directory of its own.
func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DRAY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DRAY_DEFAULT_API="+deadAPI, "DRAY_DATA="+t.TempDir())
	return cmd
}

// wordcount runs the binary and returns its output and exit code.
func wordcount(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	return bintest.Run(t, cmd)
}

func TestFunctions(t *testing.T) {
	out, errOut, code := wordcount(t, command(t, "functions"))
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{
		"wc.count(string) map[string]int", "wc.merge(map[string]int, map[string]int) map[string]int",
		"add(int64, int64) int64", "fib(int) int64", "nd.sum(ndarray) float64",
	} {
		assert.Contains(t, out, want)
	}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "wc.count", `"a b a"`}, `{"a":2,"b":1}`},
		{[]string{"run", "wc.count", `"  "`}, `{}`},
		{[]string{"run", "wc.merge", `{"a":2,"b":1}`, `{"b":3,"c":1}`}, `{"a":2,"b":4,"c":1}`},
		{[]string{"run", "wc.merge", `{"a":1}`, `{"a":2,"b":1}`}, `{"a":3,"b":1}`}, // README
		{[]string{"run", "add", "1", "2"}, `3`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := wordcount(t, command(t, tc.args...))
			require.Equal(t, 0, code, errOut)
			assert.Equal(t, tc.want+"\n", out)
			assert.Empty(t, errOut)
		})
	}
}

// TestErrors: a failed command prints one line that starts with the
// program's name.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "wc.count"}, "wordcount: wc.count takes 1 argument(s), got 0 (usage: wordcount run wc.count(string) map[string]int)\n"},
		{[]string{"run", "wc.cont", `"a"`}, `wordcount: node: unknown function "wc.cont" (did you mean wc.count?)`},
		{[]string{"map", "wc.count", `"a"`}, "wordcount: no dray node at " + deadAPI + ": start one with `wordcount node`\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := wordcount(t, command(t, tc.args...))
			assert.NotEqual(t, 0, code)
			assert.Empty(t, out)
			assert.True(t, strings.HasPrefix(errOut, tc.want), "got %q, want prefix %q", errOut, tc.want)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line, got %q", errOut)
		})
	}
}

// readmeSection is the README's "Your own functions" section.
func readmeSection(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	s := string(readme)
	at := strings.Index(s, "\n## Your own functions\n")
	require.GreaterOrEqual(t, at, 0, "no section \"Your own functions\" in README.md")
	s = s[at+1:]
	if end := strings.Index(s, "\n## "); end >= 0 {
		s = s[:end]
	}
	return s
}

// TestReadme: the README shows main.go whole, as it says.
func TestReadme(t *testing.T) {
	section := readmeSection(t)
	start := strings.Index(section, "```go\n")
	require.GreaterOrEqual(t, start, 0, "no Go code block")
	code := section[start+len("```go\n"):]
	end := strings.Index(code, "```\n")
	require.GreaterOrEqual(t, end, 0, "the Go code block does not end")
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	require.Equal(t, string(src), code[:end], "README's program differs from examples/wordcount/main.go")
}

// TestReadmeMap runs the README's map line against a wordcount node and
// checks it prints the lines the README shows after it.
func TestReadmeMap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a wordcount node process")
	}
	var args []string
	var want strings.Builder
	lines := strings.Split(readmeSection(t), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "./wordcount map ") {
			args = shellWords(t, strings.TrimPrefix(l, "./wordcount "))
			for _, out := range lines[i+1:] {
				v, ok := strings.CutPrefix(out, "# ")
				if !ok {
					break
				}
				want.WriteString(v + "\n")
			}
			break
		}
	}
	require.NotEmpty(t, args, "no ./wordcount map line")
	require.NotEmpty(t, want.String(), "no output after the map line (# lines)")

	api := startNode(t)
	cmd := command(t, args...)
	cmd.Env = append(cmd.Env, "DRAY_API="+api)
	out, errOut, code := wordcount(t, cmd)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, want.String(), out)
}

// shellWords splits a command line into words: blanks separate them,
// single quotes quote, and a # starts a comment.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			require.GreaterOrEqual(t, j, 0, "unclosed quote in %q", line)
			word.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			i = len(line)
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

// startNode starts `wordcount node` on loopback, without mDNS, and
// returns its API address; the test's cleanup stops it.
func startNode(t *testing.T) string {
	t.Helper()
	cmd := command(t, "node", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--no-mdns", "--slots", "2", "--memory", "64MiB")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	apiAddr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "api "); ok {
				apiAddr <- a
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case a := <-apiAddr:
		return a
	case <-exited:
		t.Fatalf("wordcount node exited before it was ready: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("wordcount node not ready after 30s")
	}
	return ""
}
