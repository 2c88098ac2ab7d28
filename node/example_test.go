package node_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/dray-project/dray/node"
)

func Example() {
	// Register functions before the node starts (every peer registers the same).
	reg := node.NewRegistry()
	square, err := node.Register1(reg, "square", func(_ context.Context, x int) (int, error) {
		return x * x, nil
	})
	if err != nil {
		panic(err)
	}
	add, err := node.Register2(reg, "add", func(_ context.Context, a, b int) (int, error) {
		return a + b, nil
	})
	if err != nil {
		panic(err)
	}

	cfg := node.DefaultConfig()
	cfg.Functions = reg
	cfg.Store.Dir = "" // keep objects in memory only
	n, err := node.New(cfg)
	if err != nil {
		panic(err)
	}
	defer n.Close()
	ctx := context.Background()

	// Calls return refs at once; the work runs on the node's workers.
	a, _ := square.Call(ctx, n, node.Val(3))
	b, _ := square.Call(ctx, n, node.Val(4))
	// Refs passed as arguments are dependencies: add runs once both exist.
	sum, _ := add.Call(ctx, n, a, b)
	v, err := sum.Get(ctx)
	fmt.Println(v, err)
	// Output: 25 <nil>
}

func ExampleObjectRef_Release() {
	cfg := node.DefaultConfig()
	cfg.Store.Dir = "" // keep objects in memory only
	n, err := node.New(cfg)
	if err != nil {
		panic(err)
	}
	defer n.Close()
	ctx := context.Background()

	r, err := n.Put(ctx, "a large value")
	if err != nil {
		panic(err)
	}
	fmt.Println(n.Stats().Objects)
	// Free it now rather than when the garbage collector finds r
	// unreachable; copies of r are released with it.
	r.Release()
	fmt.Println(n.Stats().Objects)
	_, err = r.Get(ctx)
	fmt.Println(errors.Is(err, node.ErrReleased))
	// Output:
	// 1
	// 0
	// true
}
