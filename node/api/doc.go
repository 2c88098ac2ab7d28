// Package api is the local control API of a dray node: HTTP/JSON over a
// loopback socket, served by Server around a *node.Node and used by the
// dray command line through Client.
//
// # Endpoints
//
// Every path has the version prefix /v1. Errors answer a non-200 status with
// {"error": message, "code": code} (see the Code constants); clients get
// them as *RemoteError.
//
//	GET  /v1/id                  {"peer": ID, "addrs": [multiaddr...], "api": "HOST:PORT"}
//	GET  /v1/peers               [{"id": ID, "addrs": [...]}...]
//	GET  /v1/functions           [FunctionInfo...]
//	POST /v1/call                CallRequest  -> CallResult
//	POST /v1/map                 MapRequest   -> MapResult
//	GET  /v1/get/{cid}           the value as JSON (?timeout=30s bounds the wait)
//	GET  /v1/get/{cid}/raw       a byte-string value's bytes, streamed, with Content-Length
//	POST /v1/put                 raw body (Content-Length required) -> {"cid": {"/": CID}}
//	POST /v1/fetch/{cid}         get the object into this node's store -> FetchResult (?timeout=)
//	GET  /v1/stats               the node's tables and swarm traffic -> Stats
//	DELETE /v1/refs/{cid}        release the ref kept for a CID -> FreeResult
//
// Fetch resolves a CID on the node: a value it has or is computing, else
// one it finds in the swarm through the DHT, fetches from a holder and
// verifies against the CID as the bytes stream in. The answer says how big
// the value is and how long that took; the node keeps the object (like a
// put value) while it runs.
//
// Arguments are JSON, one value per parameter, converted to the function's
// parameter types as the CLI always did (ArgFromJSON): {"/":"<cid>"} is a
// ref to an object, a dependency of the task; {"/":{"bytes":"<base64>"}} or
// a string is a byte string; {"dtype":..,"shape":..,"data":..} an array.
// Values come back in DAG-JSON form (codec.ToJSONValue), decoded into the
// producing function's result type when the node knows it (Node.Describe).
// CIDs travel as DAG-JSON links, {"/": "<cid>"}.
//
// # Refs and lifetime
//
// The node releases an object once no ref to it is held. The Server holds
// a ref for every CID it hands out (call and map outputs, put and fetched
// values) in a table, so a CID printed by `dray submit` or `dray put` can be
// fetched later. A waited call or map with "free" keeps nothing: its refs
// are released once it is answered (`dray run`, `dray map`). DELETE
// /v1/refs/{cid} (`dray free`) releases the table's ref for the CID at once,
// however many answers handed it out, and says whether there was one; the
// node then forgets the object — a get answers 404 unknown_ref — unless
// something else still holds it: a task waiting for it or taking it as an
// argument, or a value that contains it. On a node in a swarm a get may
// still find the CID at another peer that holds it. Gets and calls hold
// the objects they use only while they run. Closing the server releases
// the whole table.
//
// # Limits
//
// JSON request bodies are bounded (Options.MaxRequestBytes, 8 MiB by
// default) and decoded strictly: unknown fields, trailing data and wrong
// types are errors that say what was wrong. Put bodies are streamed into the
// store without a limit and must carry a Content-Length. The server has
// header and idle timeouts but no write timeout, since a waited call lasts
// as long as its task; a request ends when its client goes away.
//
// Requests in flight are bounded: at most Options.MaxInFlight at once (512
// by default, waits included), and at most Options.MaxInFlightBytes of
// call and map bodies (32 MiB). A request over either bound is refused
// before any of it is read: 503, a Retry-After header and code "busy";
// nothing of it was applied, so it can be sent again.
//
// Values are answered as a stream (a byte string straight from the store,
// base64-encoded as it is read), so an answer of any size takes bounded
// memory on the server; Client.OpenGet, CallStream and MapStream read it
// as a stream too. Values other than byte strings are still decoded whole
// before they are written.
//
// The API has no authentication: it runs functions and reads objects for
// whoever can connect, so `dray node` serves it on loopback unless told
// otherwise.
package api
