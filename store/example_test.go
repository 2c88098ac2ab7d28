package store_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/dray-project/dray/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "dray-store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := store.DefaultConfig()
	cfg.Dir = dir               // pinned objects spill to dir/objects when memory is full
	cfg.MemoryBudget = 64 << 20 // bytes of object data kept in memory
	s, err := store.Open(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	// Put names bytes by their CID (CIDv1, cbor, sha2-256) and keeps them.
	c, err := s.Put(ctx, []byte("hello, dray"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c)

	// Pin keeps an object from being dropped while it is referenced.
	if err := s.Pin(c); err != nil {
		log.Fatal(err)
	}
	data, err := s.Get(ctx, c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", data)

	// Bytes from another peer are verified against the CID they claim.
	err = s.PutVerified(ctx, c, []byte("forged"))
	fmt.Println(err != nil)

	// Streams are hashed as they are read.
	c2, n, err := s.PutStream(ctx, strings.NewReader("a stream"), -1)
	if err != nil {
		log.Fatal(err)
	}
	r, _, err := s.Open(ctx, c2)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	back, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, string(back))
	// Output:
	// bafireid3tyajtk37mqcclqtysb7do76cnlazwwnkowodmqjrmv75vwmq24
	// hello, dray
	// true
	// 8 a stream
}
