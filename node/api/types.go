package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
)

// Info is the answer of GET /v1/id: the peer's libp2p ID, its multiaddrs
// (each ending in /p2p/<id>) and the address of this API.
type Info struct {
	Peer  string   `json:"peer"`
	Addrs []string `json:"addrs"`
	API   string   `json:"api"`
}

// Peer is a connected peer, as GET /v1/peers lists them.
type Peer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// NetInfo is what a Server reports about the peer's network endpoint; the
// p2p host provides it (see Options.Network).
type NetInfo struct {
	Peer  string   // the peer ID
	Addrs []string // the peer's multiaddrs
	Peers []Peer   // connected peers
}

// FunctionInfo describes a remote function (GET /v1/functions).
type FunctionInfo struct {
	Name          string   `json:"name"`
	Params        []string `json:"params"`
	Results       []string `json:"results"`
	Signature     string   `json:"signature"`
	Deterministic bool     `json:"deterministic"`
	Doc           string   `json:"doc,omitempty"`
	// Peers, with ?swarm=1, are the peers that offer the function (this
	// node's ID among them if it does).
	Peers []string `json:"peers,omitempty"`
}

// Duration is a time.Duration that travels in JSON as a Go duration string
// such as "1.5s" or "250ms".
type Duration time.Duration

// MarshalText renders d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a Go duration string; negative durations are refused.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q: want a Go duration such as 30s or 500ms", b)
	}
	if v < 0 {
		return fmt.Errorf("bad duration %q: negative", b)
	}
	*d = Duration(v)
	return nil
}

// CallRequest is the body of POST /v1/call: call Func with Args (one JSON
// value per parameter; {"/":"<cid>"} is a ref, a dependency of the task).
// With Wait the answer holds the results too; Timeout (0: none) bounds the
// wait.
type CallRequest struct {
	Func    string            `json:"func"`
	Args    []json.RawMessage `json:"args"`
	Wait    bool              `json:"wait,omitempty"`
	Timeout Duration          `json:"timeout,omitempty"`
	On      string            `json:"on,omitempty"` // peer ID to run on
	// Free, with Wait, lets the server forget the call's refs once it has
	// answered with the values (dray run does this): the objects are freed
	// unless something else holds them.
	Free bool `json:"free,omitempty"`
	// MaxRetries replaces the function's or the node's retries (when
	// positive; negative: none); RetryErrors retries the function's own
	// failures too (see node.CallOptions).
	MaxRetries  int  `json:"max_retries,omitempty"`
	RetryErrors bool `json:"retry_errors,omitempty"`
	// Needs are resources each call needs where it runs, beside its
	// function's (see node.CallOptions.Needs): {"gpu": 1}.
	Needs map[string]int `json:"needs,omitempty"`
}

// CallResult is the answer of a call: one ref per result of the function,
// and with Wait the results as JSON, decoded into the function's result
// types.
type CallResult struct {
	Refs    []cid.Cid         `json:"refs"`
	Results []json.RawMessage `json:"results,omitempty"`
}

// MapRequest is the body of POST /v1/map: one call of Func per element of
// Args, each an argument list. All arguments are checked before any call is
// submitted.
type MapRequest struct {
	Func    string              `json:"func"`
	Args    [][]json.RawMessage `json:"args"`
	Wait    bool                `json:"wait,omitempty"`
	Timeout Duration            `json:"timeout,omitempty"`
	On      string              `json:"on,omitempty"` // peer ID to run on
	// Free is CallRequest.Free for every call.
	Free bool `json:"free,omitempty"`
	// MaxRetries replaces the function's or the node's retries (when
	// positive; negative: none); RetryErrors retries the function's own
	// failures too (see node.CallOptions).
	MaxRetries  int  `json:"max_retries,omitempty"`
	RetryErrors bool `json:"retry_errors,omitempty"`
	// Needs are resources each call needs where it runs, beside its
	// function's (see node.CallOptions.Needs): {"gpu": 1}.
	Needs map[string]int `json:"needs,omitempty"`
}

// MapResult is the answer of POST /v1/map: the calls in argument order.
type MapResult struct {
	Calls []CallResult `json:"calls"`
}

// PutResult is the answer of POST /v1/put.
type PutResult struct {
	CID cid.Cid `json:"cid"`
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// FreeResult is the answer of DELETE /v1/refs/{cid}: whether the server
// kept a ref for the CID (and now no longer does).
type FreeResult struct {
	CID  cid.Cid `json:"cid"`
	Kept bool    `json:"kept"`
}
