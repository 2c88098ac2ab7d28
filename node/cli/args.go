package cli

// Checks of the command line that cobra and pflag leave to the program, so
// that each bad input fails with one line that names what was wrong.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node/api"
)

// usageLine is a command's synopsis: its path and the arguments of its Use
// ("dray get CID").
func usageLine(cmd *cobra.Command) string {
	_, params, _ := strings.Cut(cmd.Use, " ")
	return strings.TrimSpace(cmd.CommandPath() + " " + params)
}

// requiredParams are the parameters of a command's Use that are not
// optional (not in brackets): "FUNC" of "run FUNC [ARG...]".
func requiredParams(cmd *cobra.Command) []string {
	var out []string
	for _, p := range strings.Fields(cmd.Use)[1:] {
		if !strings.HasPrefix(p, "[") {
			out = append(out, strings.TrimSuffix(p, "..."))
		}
	}
	return out
}

// argsBetween accepts from lo to hi positional arguments (hi < 0: no upper
// bound). Too few names the missing parameters, too many the extra
// arguments; both give the command's synopsis.
func argsBetween(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < lo:
			missing := requiredParams(cmd)
			if len(args) < len(missing) {
				missing = missing[len(args):]
			}
			return fmt.Errorf("%s: missing %s (usage: %s)", cmd.Name(), strings.Join(missing, " "), usageLine(cmd))
		case hi >= 0 && len(args) > hi:
			extra := make([]string, len(args)-hi)
			for i, a := range args[hi:] {
				extra[i] = strconv.Quote(a)
			}
			what := "takes no arguments"
			if hi > 0 {
				what = fmt.Sprintf("takes %d argument(s)", hi)
			}
			return fmt.Errorf("%s %s; unexpected %s (usage: %s)", cmd.Name(), what, strings.Join(extra, " "), usageLine(cmd))
		}
		return nil
	}
}

// minArgs accepts at least n positional arguments.
func minArgs(n int) cobra.PositionalArgs { return argsBetween(n, -1) }

// exactArgs accepts exactly n positional arguments.
func exactArgs(n int) cobra.PositionalArgs { return argsBetween(n, n) }

// noArgs accepts no positional argument.
var noArgs = argsBetween(0, 0)

// unknownCommand is the error of `dray NAME` for a NAME that is no
// command, with the closest commands as suggestions.
func unknownCommand(root *cobra.Command, name string) error {
	hint := ""
	if s := root.SuggestionsFor(name); len(s) > 0 {
		hint = " (did you mean " + strings.Join(s, " or ") + "?)"
	}
	return fmt.Errorf("unknown command %q%s: see `%s --help`", name, hint, root.CommandPath())
}

// flagError rewrites pflag's error for a bad flag value into plainer words
// (no "strconv.ParseInt: parsing ...") and points to the command's help.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	var num *strconv.NumError
	if errors.As(err, &num) {
		plain := "not a number"
		switch {
		case errors.Is(num.Err, strconv.ErrRange):
			plain = "out of range"
		case num.Func == "ParseInt":
			plain = "not an integer"
		case num.Func == "ParseUint":
			plain = "not a non-negative integer"
		}
		msg = strings.Replace(msg, num.Error(), plain, 1)
	}
	return fmt.Errorf("%s (see `%s --help`)", msg, c.CommandPath())
}

// checkTimeout refuses a negative --timeout.
func checkTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("--timeout %s: want a positive duration such as 30s, or 0 for no limit", d)
	}
	return nil
}

// checkPeer refuses an --on that is not a peer ID; name is the program's.
func checkPeer(on, name string) error {
	if on == "" {
		return nil
	}
	if _, err := peer.Decode(on); err != nil {
		return fmt.Errorf("--on %q: not a peer ID (`%s peers` lists them)", on, name)
	}
	return nil
}

// timedOut adds the --timeout that expired to the error of a wait that
// timed out (a node's timeout answer, or an in-process deadline).
func timedOut(err error, timeout time.Duration) error {
	var re *api.RemoteError
	if timeout > 0 && (errors.As(err, &re) && re.Code == api.CodeTimeout || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("no result within --timeout %s: %w", timeout, err)
	}
	return err
}

// firstErr returns the first error that is not nil.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
