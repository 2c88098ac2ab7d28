// Package codec is dray's value model: what can travel between peers as a
// task argument or result, its canonical CBOR encoding, and CIDs.
//
// # Values
//
// These Go values can be encoded with Marshal and decoded with Unmarshal:
//
//   - bool, int, int8..int64, uint, uint8..uint64, float32, float64, string
//     and []byte (uintptr and complex numbers cannot travel);
//   - Array, an n-dimensional array of a DType (the numpy ndarray analogue);
//   - links: cid.Cid and any type implementing Linker encode as CID links;
//     they decode into cid.Cid or a type whose pointer implements
//     LinkSetter;
//   - lists ([]T, [N]T, Tuple), maps (map[K]V with K a string, integer or
//     bool type), pointers and interfaces holding any of these;
//   - structs registered with Register, and types with their own
//     encoding.BinaryMarshaler encoding, also registered;
//   - Raw, already-encoded bytes embedded verbatim.
//
// Encoding an unregistered struct fails with a *TypeError that names the type
// and the Register call to make; Register and CheckType refuse types that
// can never travel (funcs, chans, unsafe pointers, complex numbers, uintptr,
// or structs holding them). Decoding into any yields nil, bool, int64
// (uint64 above math.MaxInt64), float64, string, []byte, []any,
// map[string]any (map[any]any if a key is not a string), cid.Cid, Array and
// values of registered types (T, not *T).
//
// # Wire format
//
// Values are CBOR (RFC 8949) in fxamacker's core deterministic encoding:
// shortest integer and length heads, the shortest float that keeps the value
// (NaN as 0xf97e00), definite lengths only, and map keys sorted bytewise by
// their encoding. Equal values therefore have equal bytes and equal CIDs.
// Nil slices, maps and pointers, nil interfaces, cid.Undef, a Linker whose
// Link is undefined and the zero Array encode as null. On top of plain CBOR
// three tags are used:
//
//   - Tag 27 ("object with type name", IANA) around [name, fields] for a
//     registered struct, fields being a map from field name to value holding
//     every field; or around [name, bytes] for a registered type with its own
//     binary encoding. The registered name travels, not the Go type name.
//     Field names come from a `codec:"name"` struct tag or else the Go
//     field name; `codec:"-"` leaves a field out, as are unexported fields.
//     Fields of embedded structs are flattened into the outer struct, as in
//     encoding/json (a tagged embedded struct is an ordinary field; embedded
//     pointers are refused at registration).
//   - Tag 40 (RFC 8746 multi-dimensional array, row-major) around [shape,
//     data] for an Array. data is the RFC 8746 little-endian typed-array tag
//     of the dtype around one byte string holding all elements: uint8 64,
//     uint16 69, uint32 70, uint64 71, int8 72, int16 77, int32 78, int64
//     79, float32 85, float64 86. Bool arrays, for which RFC 8746 has no tag,
//     use an untagged byte string of 0 and 1 bytes as data. Elements are
//     never encoded one by one.
//   - Tag 42 around a byte string 0x00 followed by the binary CID, for a
//     link, exactly as in DAG-CBOR.
//
// Large payloads (Array data, byte strings and Raw values from 16 KiB) are
// spliced into the output rather than copied through the CBOR encoder, so
// Marshal copies them exactly once into an output buffer allocated at its
// final size. Decoding an Array copies its payload once, into the new
// Array's Data.
//
// # Decoding
//
// Decoding accepts any well-formed input within the limits MaxDepth,
// MaxListLen and MaxMapLen, canonical or not (shortest forms and key order
// are not checked); CIDs are always computed over the bytes as received.
// Indefinite lengths, duplicate map keys, invalid UTF-8, bignums, tags other
// than 27, 40 and 42 (and the typed-array tags inside 40), unknown struct
// fields and unregistered type names are rejected. null decodes into the
// zero value of any type. Inputs are checked for well-formedness before
// anything is allocated, so a short input claiming a huge string or array
// fails cheaply. Memory is bounded too: before allocating, Unmarshal
// estimates the Go memory the input would create in the target type (a
// 1-byte null in a list of [1024]float64 costs 8 KiB, a dozen-byte tag 27
// item a whole registered value) and refuses inputs needing more than
// max(DecodeAllocFloor, DecodeAllocFactor x input size), that is 64 MiB or
// 64 bytes per input byte, with an error matching ErrAllocLimit. Payloads
// such as Array data cost about their size. Errors give the byte offset and
// the path of the item at fault, e.g. "codec: decode at offset 17 (Points[3].X): cannot decode text
// string into int".
//
// # CIDs
//
// Sum returns the CIDv1 (multicodec 0x51 "cbor", sha2-256) of encoded bytes;
// Verify checks bytes against a CID; Links lists the links in encoded bytes
// without decoding them.
package codec
