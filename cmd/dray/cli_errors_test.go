package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/p2p"
)

// Where a TestCLIErrors case sends its commands.
const (
	noNode      = iota // nowhere: the default API address is deadAPI
	atNode             // the test's node (DRAY_API), with its token
	atNodeNoKey        // the test's node, without its token
)

// TestCLIErrors runs the binary over bad input of every kind — flags,
// arguments, JSON, functions, CIDs and refs, API addresses and tokens,
// `dray node` start-up (listen and bootstrap addresses, swarm key files,
// data directory) and `dray sim` scenario files — and checks each fails
// as a user error should: a non-zero exit, nothing on stdout, one line on
// stderr that starts "dray: " and names what was wrong, no usage dump and
// no Go panic or stack trace.
func TestCLIErrors(t *testing.T) {
	const (
		token   = "s3cret"
		unknown = "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy" // a CID nobody has
		notPeer = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"        // a peer ID nobody has
	)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	var key bytes.Buffer
	require.NoError(t, p2p.GenerateSwarmKey(&key))
	lines := strings.Split(strings.TrimSpace(key.String()), "\n")
	require.Len(t, lines, 3, "header, encoding, key")
	var (
		garbageKey   = write("garbage.key", "not a key\n")
		emptyKey     = write("empty.key", "")
		truncatedKey = write("truncated.key", lines[0]+"\n"+lines[1]+"\n")
		badHexKey    = write("badhex.key", lines[0]+"\n"+lines[1]+"\n"+strings.Repeat("zz", 32)+"\n")
		garbageYAML  = write("garbage.yaml", "peers: [1, 2\n  x: {")
		wrongYAML    = write("wrong.yaml", "peers: many\n")
		unknownYAML  = write("unknown.yaml", "bogus_field: 3\n")
		textScenario = write("scenario.txt", "peers: 3\n")
		regularFile  = write("file", "x")
	)
	// An HTTP server that is no dray node, on an address so taken.
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	otherAddr := other.Listener.Addr().String()
	// nodeAt is `dray node` with the flags of a loopback test node except
	// --listen; node adds that too.
	nodeAt := func(extra ...string) []string {
		return append([]string{"node", "--no-mdns", "--api", "127.0.0.1:0"}, extra...)
	}
	node := func(extra ...string) []string {
		return nodeAt(append([]string{"--listen", "/ip4/127.0.0.1/tcp/0"}, extra...)...)
	}

	p := startPeer(t, "--api-token", token)

	for _, tc := range []struct {
		name string
		at   int
		env  []string // more environment
		args []string
		want string // on the one stderr line
	}{
		// Flags.
		{"unknown flag", noNode, nil, []string{"--bogus", "id"}, "unknown flag: --bogus"},
		{"unknown command flag", noNode, nil, []string{"run", "--bogus", "add", "1", "2"}, "unknown flag: --bogus"},
		{"unknown shorthand", noNode, nil, []string{"get", "-x", unknown}, "unknown shorthand flag: 'x' in -x"},
		{"flag without value", noNode, nil, []string{"run", "--on"}, "flag needs an argument: --on"},
		{"slots not a number", noNode, nil, []string{"--slots", "x", "run", "add", "1", "2"}, `invalid argument "x" for "--slots" flag: not an integer`},
		{"negative slots", noNode, nil, []string{"--slots", "-1", "run", "add", "1", "2"}, "--slots -1: want at least 1"},
		{"zero slots", noNode, nil, []string{"--slots", "0", "run", "add", "1", "2"}, "--slots 0: want at least 1"},
		{"negative slots for node", noNode, nil, node("--slots", "-4"), "--slots -4: want at least 1"},
		{"seed out of range", noNode, nil, []string{"sim", "--seed", "-1"}, `"--seed" flag: not a non-negative integer`},
		{"bad memory", noNode, nil, []string{"--memory", "lots", "run", "add", "1", "2"}, `--memory "lots"`},
		{"zero memory", noNode, nil, []string{"--memory", "0", "run", "add", "1", "2"}, `--memory "0": want a positive size`},
		{"memory share over 100%", noNode, nil, []string{"--memory", "200%", "run", "add", "1", "2"}, `--memory "200%"`},
		{"bad log level", noNode, nil, []string{"--log-level", "loud", "run", "add", "1", "2"}, `--log-level "loud"`},
		{"bad timeout", noNode, nil, []string{"run", "--timeout", "soon", "add", "1", "2"}, `invalid argument "soon" for "--timeout" flag`},
		{"negative timeout: run", noNode, nil, []string{"run", "--timeout", "-1s", "add", "1", "2"}, "--timeout -1s: want a positive duration"},
		{"negative timeout: map", noNode, nil, []string{"map", "--timeout", "-1s", "fib", "1"}, "--timeout -1s"},
		{"negative timeout: get", noNode, nil, []string{"get", "--timeout", "-1s", unknown}, "--timeout -1s"},
		{"negative timeout: fetch", noNode, nil, []string{"fetch", "--timeout", "-1s", unknown}, "--timeout -1s"},
		{"on: not a peer ID", noNode, nil, []string{"run", "--on", "peer-7", "whoami"}, `--on "peer-7": not a peer ID`},
		{"on: not a peer ID (submit)", noNode, nil, []string{"submit", "--on", "x", "whoami"}, `--on "x": not a peer ID`},
		{"flag after FUNC", noNode, nil, []string{"run", "add", "1", "2", "--timeout", "5s"}, "(flags go before FUNC)"},

		// Commands and their arguments.
		{"unknown command", noNode, nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"misspelt command", noNode, nil, []string{"rn", "add", "1", "2"}, `unknown command "rn" (did you mean run`},
		{"unknown help topic", noNode, nil, []string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{"unknown completion shell", noNode, nil, []string{"completion", "tcsh"}, `unknown shell "tcsh"`},
		{"run: no FUNC", noNode, nil, []string{"run"}, "run: missing FUNC (usage: dray run FUNC [ARG...])"},
		{"map: no FUNC", noNode, nil, []string{"map"}, "map: missing FUNC ARG"},
		{"map: no ARG", noNode, nil, []string{"map", "fib"}, "map: missing ARG"},
		{"submit: no FUNC", noNode, nil, []string{"submit"}, "submit: missing FUNC"},
		{"get: no CID", noNode, nil, []string{"get"}, "get: missing CID"},
		{"get: two CIDs", noNode, nil, []string{"get", unknown, unknown}, "get takes 1 argument(s); unexpected"},
		{"fetch: no CID", noNode, nil, []string{"fetch"}, "fetch: missing CID"},
		{"free: no CID", noNode, nil, []string{"free"}, "free: missing CID"},
		{"put: no FILE", noNode, nil, []string{"put"}, "put: missing FILE|-"},
		{"id: an argument", noNode, nil, []string{"id", "extra"}, `id takes no arguments; unexpected "extra"`},
		{"stats: an argument", noNode, nil, []string{"stats", "now"}, "stats takes no arguments"},
		{"node: an argument", noNode, nil, node("start"), `node takes no arguments; unexpected "start"`},

		// JSON arguments.
		{"run: bad JSON", noNode, nil, []string{"run", "add", "1", "{"}, "add: argument 2: invalid JSON"},
		{"run: truncated list", noNode, nil, []string{"run", "len", "[1,2"}, "len: argument 1: invalid JSON"},
		{"map: bad JSON", noNode, nil, []string{"map", "fib", "{"}, "fib: ARG 1: invalid JSON"},
		{"submit: bad JSON", noNode, nil, []string{"submit", "add", "x", "1"}, "add: argument 1: invalid JSON"},
		{"wrong type", noNode, nil, []string{"run", "add", "1", `"two"`}, `cannot use "two" (string) as int64`},
		{"bad bytes", noNode, nil, []string{"run", "sha256", `{"/":{"bytes":"!!"}}`}, "sha256: argument 1"},
		{"map: not an argument list", atNode, nil, []string{"map", "add", "1"}, "each ARG is a JSON list"},

		// Functions.
		{"unknown function", noNode, nil, []string{"run", "ad", "1", "2"}, `unknown function "ad" (did you mean add`},
		{"unknown function at a node", atNode, nil, []string{"run", "nosuch", "1"}, `unknown function "nosuch"`},
		{"unknown function: submit", atNode, nil, []string{"submit", "nosuch"}, `unknown function "nosuch"`},
		{"argument count", noNode, nil, []string{"run", "add", "1"}, "add takes 2 argument(s), got 1"},
		{"argument count at a node", atNode, nil, []string{"run", "add", "1", "2", "3"}, "add takes 2 argument(s), got 3"},
		{"the function fails", atNode, nil, []string{"run", "fib", "-1"}, "fib of negative -1"},

		// CIDs and refs.
		{"get: bad CID", noNode, nil, []string{"get", "notacid"}, `bad CID "notacid"`},
		{"fetch: bad CID", noNode, nil, []string{"fetch", "Qm123"}, `bad CID "Qm123"`},
		{"free: a bad CID among good", noNode, nil, []string{"free", unknown, "notacid"}, `bad CID "notacid"`},
		{"bad ref argument", noNode, nil, []string{"run", "add", `{"/":"bafynotacid"}`, "1"}, `bad ref "bafynotacid"`},
		{"bad ref argument at a node", atNode, nil, []string{"run", "sha256", `{"/":"bafynotacid"}`}, `bad ref "bafynotacid"`},
		{"unknown ref argument", noNode, nil, []string{"run", "add", `{"/":"` + unknown + `"}`, "1"}, "unknown ref"},
		{"get: unknown ref", atNode, nil, []string{"get", unknown}, "unknown ref"},
		{"on: no such peer", atNode, nil, []string{"run", "--on", notPeer, "whoami"}, "cannot run on peer " + notPeer},
		{"get: timeout", atNode, nil, []string{"run", "--timeout", "50ms", "sleep", "3000"}, "no result within --timeout 50ms"},

		// Files.
		{"put: no such file", noNode, nil, []string{"put", filepath.Join(dir, "nonexistent")}, "no such file"},
		{"put: a directory", noNode, nil, []string{"put", dir}, "not a regular file"},
		{"put: empty name", noNode, nil, []string{"put", ""}, "put: empty file name"},
		{"get --out: no directory", noNode, nil, []string{"get", "--out", filepath.Join(dir, "no", "x"), unknown}, "--out " + filepath.Join(dir, "no", "x") + ": no directory"},
		{"get --out: a directory", noNode, nil, []string{"get", "--out", dir, unknown}, "is a directory"},

		// API address and token.
		{"unreachable --api", noNode, nil, []string{"--api", deadAPI, "id"}, "no dray node at " + deadAPI + " (from --api)"},
		{"unreachable DRAY_API", noNode, []string{"DRAY_API=" + deadAPI}, []string{"run", "add", "1", "2"}, "no dray node at " + deadAPI + " (from DRAY_API)"},
		{"no node at the default address", noNode, nil, []string{"stats"}, "no dray node at " + deadAPI + ": start one with `dray node`"},
		{"not a dray node", noNode, nil, []string{"--api", otherAddr, "id"}, "(is this a dray node?)"},
		{"--api not HOST:PORT", noNode, nil, []string{"--api", "nonsense", "id"}, `--api "nonsense": want HOST:PORT`},
		{"--api port out of range", noNode, nil, []string{"--api", "127.0.0.1:99999", "stats"}, `--api "127.0.0.1:99999": want HOST:PORT`},
		{"DRAY_API not HOST:PORT", noNode, []string{"DRAY_API=http://127.0.0.1:5050/"}, []string{"peers"}, `DRAY_API "http://127.0.0.1:5050/": want HOST:PORT`},
		{"wrong token", atNode, nil, []string{"--api-token", "wrong", "id"}, "missing or wrong API token"},
		{"no token", atNodeNoKey, nil, []string{"run", "add", "1", "2"}, "missing or wrong API token"},

		// dray node start-up.
		{"node: --api not HOST:PORT", noNode, nil, []string{"node", "--no-mdns", "--api", "nonsense"}, `--api "nonsense": want HOST:PORT`},
		{"node: --api port out of range", noNode, nil, []string{"node", "--no-mdns", "--api", "127.0.0.1:70000"}, `--api "127.0.0.1:70000": want HOST:PORT`},
		{"node: public API without a token", noNode, nil, []string{"node", "--no-mdns", "--api", "0.0.0.0:0"}, "needs a token there"},
		{"node: API address taken", noNode, nil, []string{"node", "--no-mdns", "--api", otherAddr}, "is another dray node running?"},
		{"node: bad --listen", noNode, nil, node("--listen", "not-a-multiaddr"), `listen address "not-a-multiaddr"`},
		{"node: bad --listen IP", noNode, nil, nodeAt("--listen", "/ip4/1.2.3/tcp/0"), `listen address "/ip4/1.2.3/tcp/0"`},
		{"node: --listen port out of range", noNode, nil, nodeAt("--listen", "/ip4/127.0.0.1/tcp/99999"), `listen address "/ip4/127.0.0.1/tcp/99999"`},
		{"node: --listen on an address not ours", noNode, nil, nodeAt("--listen", "/ip4/192.0.2.1/tcp/4001"), "could not listen on any address: /ip4/192.0.2.1/tcp/4001"},
		{"node: bad --bootstrap", noNode, nil, node("--bootstrap", "garbage"), `bootstrap address "garbage"`},
		{"node: --bootstrap without peer ID", noNode, nil, node("--bootstrap", "/ip4/127.0.0.1/tcp/4001"), "must end in /p2p/<peer id>"},
		{"node: garbage swarm key", noNode, nil, node("--swarm-key", garbageKey), garbageKey + `: first line must be "/key/swarm/psk/1.0.0/"`},
		{"node: empty swarm key", noNode, nil, node("--swarm-key", emptyKey), emptyKey},
		{"node: swarm key without key", noNode, nil, node("--swarm-key", truncatedKey), truncatedKey},
		{"node: swarm key not hex", noNode, nil, node("--swarm-key", badHexKey), "not valid base16"},
		{"node: no swarm key file", noNode, nil, node("--swarm-key", filepath.Join(dir, "none.key")), "none.key: no such file"},
		{"node: swarm key is a directory", noNode, nil, node("--swarm-key", dir), "swarm key"},
		{"node: data directory is a file", noNode, nil, node("--data", regularFile), regularFile},

		// dray sim scenarios.
		{"sim: no scenario file", noNode, nil, []string{"sim", "--scenario", filepath.Join(dir, "none.yaml")}, "none.yaml: no such file"},
		{"sim: garbage YAML", noNode, nil, []string{"sim", "--scenario", garbageYAML}, garbageYAML},
		{"sim: wrong field type", noNode, nil, []string{"sim", "--scenario", wrongYAML}, wrongYAML},
		{"sim: unknown field", noNode, nil, []string{"sim", "--scenario", unknownYAML}, "bogus_field"},
		{"sim: not YAML or JSON", noNode, nil, []string{"sim", "--scenario", textScenario}, `".txt": want .yaml, .yml or .json`},
		{"sim: scenario is a directory", noNode, nil, []string{"sim", "--scenario", dir}, "is a directory"},
		{"sim: bad mode", noNode, nil, []string{"sim", "--mode", "fast"}, `--mode "fast": want des or emu`},
		{"sim: negative peers", noNode, nil, []string{"sim", "--peers", "-1"}, "peers is -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A command that wrongly succeeds may not end by itself (dray
			// node): the deadline makes that a failure, not a hang.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, drayBin, tc.args...)
			cmd.Env = append(testEnv(), "DRAY_DATA="+t.TempDir())
			switch tc.at {
			case atNode:
				cmd.Env = append(cmd.Env, "DRAY_API="+p.api, "DRAY_API_TOKEN="+token)
			case atNodeNoKey:
				cmd.Env = append(cmd.Env, "DRAY_API="+p.api)
			}
			cmd.Env = append(cmd.Env, tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			require.NoError(t, ctx.Err(), "dray %q did not exit: %s", tc.args, stderr.String())
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "dray %q succeeded: %s", tc.args, stdout.String())
			assert.NotZero(t, exit.ExitCode())
			out := stderr.String()
			assert.Empty(t, stdout.String(), "nothing on stdout")
			assert.Equal(t, 1, strings.Count(out, "\n"), "one line on stderr, got %q", out)
			assert.True(t, strings.HasPrefix(out, "dray: "), "got %q", out)
			assert.Contains(t, out, tc.want)
			for _, trace := range []string{"goroutine ", "panic:", ".go:"} {
				assert.NotContains(t, out, trace, "a Go stack trace")
			}
			assert.NotContains(t, out, "Usage:", "a usage dump")
		})
	}
}
