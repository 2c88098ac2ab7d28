// Package cli is dray's command line as a library: a program that
// registers remote functions of its own gets the whole command line —
// node, run, map, submit, get, put, fetch, free, id, peers, stats,
// functions, sim, swarm-key, help and completion — over its registry.
// The built-in functions (package node/builtin) come with it unless the
// program leaves them out with WithoutBuiltins.
//
// A custom binary is a few lines:
//
//	func main() {
//		reg := node.NewRegistry()
//		reg.MustRegister("wc.count", count, node.Deterministic())
//		cli.Main(reg)
//	}
//
// Every peer of a swarm runs a binary that offers the functions it is to
// run (tasks go only to peers that offer their function), so the program
// is built once and copied to every machine; cmd/dray is cli.Main(nil).
//
// Main runs the command line on os.Args and exits; Command returns its
// root cobra.Command, for a program that embeds it or a test that runs it
// in process. Help and error lines name the program (Name; by default the
// base name of os.Args[0]): a failed command prints one line on stderr,
// "wordcount: " and what was wrong, and exits with status 1.
//
// The commands talk to a node's control API (package node/api) at --api,
// else $DRAY_API, else 127.0.0.1:5050. An address given by --api or
// DRAY_API must answer. With neither, `run` and `functions` fall back to
// an in-process peer when nothing answers at the default address; the
// other commands fail with one line that says to start a node.
// DRAY_DEFAULT_API replaces the default address without making it
// explicit (tests use it), DRAY_DATA the default data directory
// (~/.dray) and DRAY_API_TOKEN the API token.
package cli
