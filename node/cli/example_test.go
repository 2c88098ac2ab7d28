package cli_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/cli"
)

// Example runs `functions` of a program with one function of its own and
// no built-ins. With no node to ask (none at the default API address), it
// lists the program's own functions.
func Example() {
	reg := node.NewRegistry()
	reg.MustRegister("wc.count", func(text string) map[string]int {
		counts := map[string]int{}
		for _, w := range strings.Fields(text) {
			counts[w]++
		}
		return counts
	}, node.Deterministic(), node.Doc("counts the words of a text"))

	var out bytes.Buffer
	cmd := cli.Command(&out, &out, reg, cli.WithoutBuiltins(), cli.Name("wordcount"))
	cmd.SetArgs([]string{"functions"})
	if err := cmd.Execute(); err != nil {
		fmt.Println(err)
	}
	fmt.Print(out.String())
	// Output:
	// wc.count(string) map[string]int  deterministic  counts the words of a text
}
