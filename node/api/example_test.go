package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/api"
	"github.com/dray-project/dray/node/builtin"
)

// Example serves a node's control API on a loopback port and calls a
// function through a Client, as `dray run add 1 2` does.
func Example() {
	reg := node.NewRegistry()
	if err := builtin.Register(reg); err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "dray-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cfg := node.DefaultConfig()
	cfg.Functions = reg
	cfg.Store.Dir = dir
	n, err := node.New(cfg)
	if err != nil {
		panic(err)
	}
	defer n.Close()

	srv := api.NewServer(n, api.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	c := api.NewClient(ln.Addr().String())
	res, err := c.Call(context.Background(), api.CallRequest{
		Func: "add",
		Args: []json.RawMessage{json.RawMessage("1"), json.RawMessage("2")},
		Wait: true,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(res.Results[0]))

	_, err = c.Call(context.Background(), api.CallRequest{Func: "ad"})
	fmt.Println(err)
	// Output:
	// 3
	// node: unknown function "ad" (did you mean add, nd.rand?)
}
