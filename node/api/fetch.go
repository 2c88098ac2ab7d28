package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/node"
)

// FetchResult is the answer of POST /v1/fetch/{cid}: the object is now in
// this node's store, and stays there while the node runs.
type FetchResult struct {
	CID cid.Cid `json:"cid"`
	// Size is the size in bytes of the value's encoding, as the store
	// holds it (for a byte string: its bytes plus a CBOR head of 1-9 bytes).
	Size int64 `json:"size"`
	// Seconds is how long the node took to have the value: the DHT lookup,
	// the transfer and its verification (or the wait for a task output this
	// node is computing).
	Seconds float64 `json:"seconds"`
	// Local reports that the node already had the object (or was computing
	// it): nothing was fetched from a peer.
	Local bool `json:"local"`
}

// handleFetch resolves a CID on this node: a value it has, or one it finds
// in the swarm, fetches, verifies and keeps.
func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request) {
	c, timeout, err := s.cidAndTimeout(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeout))
		defer cancel()
	}
	_, _, tracked := s.n.Describe(c)
	local := tracked || s.n.Store().Has(c)
	start := time.Now()
	ref, err := s.ref(ctx, c)
	if err != nil {
		s.fail(w, err)
		return
	}
	size, err := s.valueSize(ctx, ref)
	if err != nil {
		ref.Release()
		s.fail(w, fmt.Errorf("fetch %s: %w", c, err))
		return
	}
	s.keep(ref)
	s.reply(w, FetchResult{CID: c, Size: size, Seconds: time.Since(start).Seconds(), Local: local})
}

// valueSize waits for ref's value and returns the size of its encoding.
func (s *Server) valueSize(ctx context.Context, ref node.ObjectRef) (int64, error) {
	if size, ok := s.n.Store().Size(ref.CID()); ok {
		return size, nil // a put or fetched value: its ref is its content CID
	}
	// A task output: its ref names the task's result, not the bytes. A
	// byte string is sized without reading it; other values are read.
	rc, size, err := s.n.OpenBytes(ctx, ref)
	if err == nil {
		rc.Close()
		return size + byteStringHead(size), nil
	}
	if !errors.Is(err, node.ErrNotBytes) {
		return 0, err
	}
	var raw codec.Raw
	if err := ref.GetInto(ctx, &raw); err != nil {
		return 0, err
	}
	return int64(len(raw)), nil
}

// byteStringHead is the length of the CBOR head of a byte string of n bytes.
func byteStringHead(n int64) int64 {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	}
	return 9
}
