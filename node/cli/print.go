package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node/api"
)

// Values are printed as they stream from the node, never held whole. A
// byte string above maxTerminalBytes is not printed on a terminal, as curl
// refuses binary output there: it would fill the screen with base64.

// maxTerminalBytes is the largest byte string printed on a terminal.
const maxTerminalBytes = 1 << 20

// bytesJSONPrefix opens a byte string's DAG-JSON.
const bytesJSONPrefix = `{"/":{"bytes":"`

// base64Len is the length of n bytes in unpadded base64.
func base64Len(n int) int { return (n*8 + 5) / 6 }

// errBinaryTerminal reports a byte string too large for a terminal; its
// message is the command's one line.
type errBinaryTerminal struct{ hint string }

func (e *errBinaryTerminal) Error() string {
	return fmt.Sprintf("the value is a byte string of more than 1 MiB: binary output can mess up your terminal; %s", e.hint)
}

// isTTY reports whether w is a terminal (not merely a character device
// such as /dev/null).
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// copyValue copies one value's JSON from r to w. On a terminal (tty) a
// byte string above maxTerminalBytes is refused before anything is
// written, with hint saying what to do instead.
func copyValue(w io.Writer, r io.Reader, tty bool, hint string) error {
	if !tty {
		_, err := io.Copy(w, r)
		return err
	}
	// Look at the start of the value: enough to see whether it is a
	// byte string whose base64 goes past the limit.
	look := len(bytesJSONPrefix) + base64Len(maxTerminalBytes) + 1
	br := bufio.NewReaderSize(r, look)
	head, err := br.Peek(look)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(head) == look && bytes.HasPrefix(head, []byte(bytesJSONPrefix)) &&
		bytes.IndexByte(head[len(bytesJSONPrefix):], '"') < 0 {
		return &errBinaryTerminal{hint: hint}
	}
	_, err = io.Copy(w, br)
	return err
}

// results prints a call's results as they stream: one result as it is,
// several as one JSON array, then a newline.
type results struct {
	w     io.Writer
	tty   bool
	hint  string
	calls int // calls printed whole
}

func newResults(cmd *cobra.Command, hint string) *results {
	w := cmd.OutOrStdout()
	return &results{w: w, tty: isTTY(w), hint: hint}
}

// value prints result i of a call with refs.
func (p *results) value(refs []cid.Cid, i int, v io.Reader) error {
	if len(refs) > 1 {
		sep := ","
		if i == 0 {
			sep = "["
		}
		if _, err := io.WriteString(p.w, sep); err != nil {
			return err
		}
	}
	if err := copyValue(p.w, v, p.tty, p.hint); err != nil {
		return err
	}
	if i < len(refs)-1 {
		return nil
	}
	end := "\n"
	if len(refs) > 1 {
		end = "]\n"
	}
	p.calls++
	_, err := io.WriteString(p.w, end)
	return err
}

// upTo prints the calls before call k that had no results ("[]").
func (p *results) upTo(k int) error {
	for ; p.calls < k; p.calls++ {
		if _, err := io.WriteString(p.w, "[]\n"); err != nil {
			return err
		}
	}
	return nil
}

// runHint is what to do instead of printing a large byte string result of
// run or map on a terminal; name is the program's.
func runHint(name string) string {
	return fmt.Sprintf("pipe the output to a file, or use `%s submit` then `%s get --out FILE CID`", name, name)
}

// printGet streams the JSON of the value id; name is the program's.
func printGet(cmd *cobra.Command, c *api.Client, id cid.Cid, timeout time.Duration, name string) error {
	rc, err := c.OpenGet(cmd.Context(), id, timeout)
	if err != nil {
		return err
	}
	defer rc.Close()
	w := cmd.OutOrStdout()
	err = copyValue(w, rc, isTTY(w), fmt.Sprintf("write it to a file with `%s get --out FILE %s`", name, id))
	if err != nil {
		var bt *errBinaryTerminal
		if !errors.As(err, &bt) {
			err = fmt.Errorf("get %s: %w", id, err)
		}
	}
	return err
}
