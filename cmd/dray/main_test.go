package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/internal/bintest"
	"github.com/dray-project/dray/store"
)

var (
	drayBin string
	// deadAPI is an address where no node answers: the tests run with it as
	// the default API address, so they never depend on 127.0.0.1:5050.
	deadAPI string
)

// TestMain builds the dray binary once; the tests run it as a user would.
// With DRAY_BENCH_ROLE set, the binary is a benchmark's child process
// instead (see runBenchRole).
func TestMain(m *testing.M) {
	if role := os.Getenv(benchRoleEnv); role != "" {
		os.Exit(runBenchRole(role))
	}
	bin, remove, err := bintest.Build(".", "dray")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	drayBin = bin
	if deadAPI, err = bintest.DeadAddr(); err != nil {
		panic(err)
	}
	code := m.Run()
	remove()
	os.Exit(code)
}

func dray(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return drayIn(t, t.TempDir(), args...)
}

func drayIn(t *testing.T, dataDir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(drayBin, args...)
	cmd.Env = append(testEnv(), "DRAY_DATA="+dataDir)
	return bintest.Run(t, cmd)
}

// testEnv is the environment of the dray processes: no DRAY_API, and the
// default API address one where nothing answers.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DRAY_API=") && !strings.HasPrefix(kv, "DRAY_DEFAULT_API=") {
			env = append(env, kv)
		}
	}
	return append(env, "DRAY_DEFAULT_API="+deadAPI)
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "add", "1", "2"}, "3"},
		{[]string{"run", "sum", "[1, 2, 3.5]"}, "6.5"},
		{[]string{"run", "len", `"héllo"`}, "6"},
		{[]string{"run", "len", `[1, "a", null]`}, "3"},
		{[]string{"run", "fib", "20"}, "6765"},
		{[]string{"run", "sha256", `"abc"`}, `"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"`},
		{[]string{"run", "sha256", `{"/":{"bytes":"YWJj"}}`}, `"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"`},
		{[]string{"run", "bytes", "4", "7"}, `{"/":{"bytes":`},
		{[]string{"run", "nd.sum", `{"dtype":"int32","shape":[2,2],"data":[1,2,3,4]}`}, "10"},
		{[]string{"run", "nd.matmul", `{"dtype":"float64","shape":[1,2],"data":[1,2]}`, `{"dtype":"float64","shape":[2,1],"data":[3,4]}`},
			`{"dtype":"float64","shape":[1,1],"data":[11]}`},
		{[]string{"run", "nd.rand", "[2]", "1"}, `{"dtype":"float64","shape":[2],"data":[`},
		{[]string{"run", "whoami"}, `"peer-`},
		{[]string{"run", "add", "--", "-1", "2"}, "1"},
		{[]string{"run", "add", "-1", "-2"}, "-3"},
		{[]string{"run", "add", "1e3", "2"}, "1002"},
		{[]string{"run", "sleep", "1"}, `"peer-`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := dray(t, tc.args...)
			require.Equal(t, 0, code, "stderr: %s", errOut)
			assert.True(t, strings.HasPrefix(strings.TrimSpace(out), tc.want), "got %q, want prefix %q", out, tc.want)
			assert.Empty(t, errOut, "nothing on stderr on success")
		})
	}
	// Nothing on stderr either when the data directory already holds
	// objects (the store logs at info level when it opens one).
	dir := t.TempDir()
	_, errOut, code := drayIn(t, dir, "--memory", "1MB", "run", "bytes", "2000000", "1")
	require.Equal(t, 0, code, errOut)
	_, errOut, code = drayIn(t, dir, "run", "add", "1", "2")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, errOut)
}

// TestBadInput checks that every bad input exits non-zero with one line on
// stderr that names what was wrong, and prints nothing on stdout.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "ad", "1", "2"}, `unknown function "ad" (did you mean add`},
		{[]string{"run", "nd.summ", "1"}, `did you mean nd.sum`},
		{[]string{"run", "add", "1"}, "add takes 2 argument(s), got 1 (usage: dray run add(int64, int64) int64)"},
		{[]string{"run", "add", "1", "2", "3"}, "got 3"},
		{[]string{"run", "add", "1", "{"}, "add: argument 2: invalid JSON"},
		{[]string{"run", "add", "1", `"two"`}, `add: argument 2: cannot use "two" (string) as int64`},
		{[]string{"run", "add", "1.5", "2"}, "argument 1: cannot use 1.5 (number) as int64"},
		{[]string{"run", "add", "9223372036854775807", "1"}, "add: 9223372036854775807 + 1 overflows int64"},
		{[]string{"run", "matmul", "1", "2"}, "did you mean nd.matmul"},
		{[]string{"run", "nd.sum", "[1,2]"}, `cannot use [1,2] (list) as codec.Array: want {"dtype"`},
		{[]string{"run", "nd.sum", `{"dtype":"float64","shape":"x","data":[1]}`}, `field "shape" has the wrong type`},
		{[]string{"run", "sum", `[1, "x"]`}, `cannot use "x" (string) as float64 at [1]`},
		{[]string{"run", "add", `{"/":"bafynotacid"}`, "1"}, "bad ref"},
		{[]string{"run", "add", `{"/":"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}`, "1"}, "unknown ref"},
		{[]string{"run", "fib", "-1"}, "fib of negative -1"},
		{[]string{"run"}, "run: missing FUNC"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run", "--slots", "0", "add", "1", "2"}, "--slots 0: want at least 1"},
		{[]string{"run", "--memory", "lots", "add", "1", "2"}, `--memory "lots"`},
		{[]string{"run", "--bogus", "add"}, "unknown flag: --bogus"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := dray(t, tc.args...)
			assert.NotEqual(t, 0, code)
			assert.Empty(t, out)
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			assert.Len(t, lines, 1, "one line on stderr, got %q", errOut)
			assert.Contains(t, errOut, tc.want)
			assert.True(t, strings.HasPrefix(errOut, "dray: "), "got %q", errOut)
		})
	}
}

func TestFunctions(t *testing.T) {
	out, errOut, code := dray(t, "functions")
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{
		"add(int64, int64) int64", "sum([]float64) float64", "len(any) int", "fib(int) int64",
		"sleep(int) string", "whoami() string", "sha256(bytes) string", "bytes(int, uint64) bytes",
		"nd.rand([]int, uint64) ndarray", "nd.matmul(ndarray, ndarray) ndarray", "nd.sum(ndarray) float64",
	} {
		assert.Contains(t, out, want)
	}
}

// TestRunWhileDataDirInUse checks that a command still runs when another
// peer holds the data directory: it spills to a private directory instead.
func TestRunWhileDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	cfg := store.DefaultConfig()
	cfg.Dir = dir
	s, err := store.Open(cfg)
	require.NoError(t, err)
	defer s.Close()
	out, errOut, code := drayIn(t, dir, "run", "add", "40", "2")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "42\n", out)
}
