package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node/api"
)

// target is the node API a command talks to.
type target struct {
	name     string // the program's name
	addr     string
	token    string // the API token, if any
	source   string // "--api", "DRAY_API" or "" for the default address
	explicit bool   // given by --api or DRAY_API: it must answer
}

// apiTarget resolves the API address: --api, else $DRAY_API, else
// $DRAY_DEFAULT_API or 127.0.0.1:5050. Only the last is not explicit. An
// address that is not HOST:PORT is an error that names where it came from.
func apiTarget(cmd *cobra.Command, opts *options) (target, error) {
	t := target{name: opts.name, addr: api.DefaultAddr, token: apiToken(cmd, opts)}
	from := ""
	if f := cmd.Flag("api"); f != nil && f.Changed {
		t.addr, t.source, t.explicit = opts.api, "--api", true
		from = "--api"
	} else if a := strings.TrimSpace(os.Getenv("DRAY_API")); a != "" {
		t.addr, t.source, t.explicit = a, "DRAY_API", true
		from = "DRAY_API"
	} else if a := strings.TrimSpace(os.Getenv("DRAY_DEFAULT_API")); a != "" {
		t.addr = a
		from = "DRAY_DEFAULT_API"
	}
	if from != "" {
		if err := checkHostPort(t.addr, false); err != nil {
			return target{}, fmt.Errorf("%s %q: %w", from, t.addr, err)
		}
	}
	return t, nil
}

// checkHostPort checks that addr is HOST:PORT with a port number; port 0
// only when zeroOK (a server's "any free port").
func checkHostPort(addr string, zeroOK bool) error {
	host, port, err := net.SplitHostPort(addr)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 0 || p > 65535 || p == 0 && !zeroOK || strings.ContainsAny(host, " /") {
		return fmt.Errorf("want HOST:PORT such as %s", api.DefaultAddr)
	}
	return nil
}

func (t target) client() *api.Client { return api.NewClient(t.addr).WithToken(t.token) }

// printIndented writes v as indented JSON (dray id, dray stats).
func printIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// apiToken is the API token: --api-token, else $DRAY_API_TOKEN, else none.
func apiToken(cmd *cobra.Command, opts *options) string {
	if f := cmd.Flag("api-token"); f != nil && f.Changed {
		return opts.apiToken
	}
	return strings.TrimSpace(os.Getenv("DRAY_API_TOKEN"))
}

// noNode is the one-line error for a node that does not answer.
func (t target) noNode() error {
	if t.explicit {
		return fmt.Errorf("no dray node at %s (from %s): start one with `%s node --api %s`", t.addr, t.source, t.name, t.addr)
	}
	return fmt.Errorf("no dray node at %s: start one with `%s node`", t.addr, t.name)
}

// remoteErr turns a client error into the command's error line.
func (t target) remoteErr(err error) error {
	if errors.Is(err, api.ErrNoNode) {
		return t.noNode()
	}
	return err
}

// checkArgs checks that every argument is one JSON value, so a bad one is
// reported as in the in-process path ("FUNC: argument N: invalid JSON").
func checkArgs(fn string, args []string) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(args))
	for i, a := range args {
		if err := api.CheckJSON([]byte(a)); err != nil {
			return nil, fmt.Errorf("%s: argument %d: %w%s", fn, i+1, err, flagHint(a))
		}
		out[i] = json.RawMessage(a)
	}
	return out, nil
}

// flagHint is a hint for an argument after FUNC that looks like a flag.
func flagHint(arg string) string {
	if strings.HasPrefix(arg, "--") && len(arg) > 2 {
		return " (flags go before FUNC)"
	}
	return ""
}

// dropDashDash removes a "--" right after FUNC (`dray run add -- -1 2`).
func dropDashDash(args []string) []string {
	if len(args) > 1 && args[1] == "--" {
		return append(args[:1:1], args[2:]...)
	}
	return args
}
