package main

import (
	"strings"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/cli"
)

func main() {
	node.Default().MustRegister("wc.count", func(text string) map[string]int {
		counts := map[string]int{}
		for _, w := range strings.Fields(text) {
			counts[w]++
		}
		return counts
	}, node.Deterministic())
	node.Default().MustRegister("wc.merge", func(a, b map[string]int) map[string]int {
		for w, n := range b {
			a[w] += n
		}
		return a
	}, node.Deterministic())
	cli.Main(node.Default())
}
