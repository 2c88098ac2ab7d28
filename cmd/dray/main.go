// Command dray runs remote functions on a dray peer.
//
//	dray run add 1 2          # prints 3
//	dray functions            # lists the built-in functions
//	dray node                 # starts a peer that the other commands talk to
//	dray fetch CID            # gets an object from the swarm into the node's store
//	dray stats                # the node's figures as JSON
//
// The commands talk to a node's control API (package node/api) at --api,
// else $DRAY_API, else 127.0.0.1:5050. An address given by --api or
// DRAY_API must answer. With neither, `run` and `functions` fall back to an
// in-process peer (the embedded default: no setup and no server to start by
// hand) when nothing answers at the default address; the other commands
// fail with one line that says to start a node. DRAY_DEFAULT_API replaces
// the default address without making it explicit (the tests use it).
//
// The commands live in package node/cli: a program with functions of its
// own gets the same command line with cli.Main (see examples/wordcount).
package main

import "github.com/dray-project/dray/node/cli"

func main() { cli.Main(nil) }
