package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/wire"
)

// TestHostileHandOffs: a peer speaking the session protocol by hand hands
// a node tasks it must not run or cannot decode. Each gets an error reply
// (a refusal, or a completion carrying the error) or, for bytes that are
// not a protocol at all, a reset session — never a crash — and the node
// then runs a good task as before.
func TestHostileHandOffs(t *testing.T) {
	reg := napRegistry(t)
	hb := loopHost(t)
	b := loopNode(t, hb, func(c *Config) { c.Functions = reg })
	evil := loopHost(t, hb)
	nap, err := reg.Lookup("nap")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Bootstrapping dials in the background: connect first, so the first
	// stream does not race it ("no addresses" 1 run in 3).
	require.NoError(t, evil.Connect(ctx, hb.AddrInfo()))

	enc := func(v any) []byte {
		data, err := codec.Marshal(v)
		require.NoError(t, err)
		return data
	}
	handoffOf := func(fn *Function, args ...[]byte) []byte {
		targs := make([]argument, len(args))
		hargs := make([]wire.Arg, len(args))
		for i, a := range args {
			targs[i].raw, hargs[i].Data = a, a
		}
		spec, err := b.encodeSpec(fn, targs)
		require.NoError(t, err)
		return enc(wire.Handoff{Spec: spec, Args: hargs})
	}
	open := func() (network.Stream, *bufio.Reader) {
		s, err := evil.Libp2p().NewStream(ctx, hb.ID(), wire.SessionProtocol)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Reset() })
		return s, bufio.NewReader(s)
	}
	// reply returns the first frame that is not an acknowledgement.
	reply := func(s network.Stream, r *bufio.Reader) (uint8, []byte, error) {
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			typ, payload, err := p2p.ReadFrame(r, wire.MaxSessionFrame)
			if err != nil || typ != wire.FrameAck {
				return typ, payload, err
			}
		}
	}

	for _, tc := range []struct {
		name  string
		frame []byte
		typ   uint8  // the reply frame expected; 0: the session is reset
		says  string // in the refusal's reason or the completion's error
	}{
		{"unregistered function", appendFrame(nil, wire.FrameSubmit, handoffOf(&Function{Name: "rm-rf"}, enc(1))), wire.FrameRefuse, `unknown function "rm-rf"`},
		{"wrong argument count", appendFrame(nil, wire.FrameSubmit, handoffOf(nap, enc(1), enc(2))), wire.FrameRefuse, "nap takes 1 arguments, got 2"},
		{"wrong argument type", appendFrame(nil, wire.FrameSubmit, handoffOf(nap, enc("ten"))), wire.FrameDone, "argument 1"},
		{"not a hand-off", appendFrame(nil, wire.FrameSubmit, []byte{0xff, 0x00, 0x13}), 0, ""},
		{"unknown frame type", appendFrame(nil, 200, nil), 0, ""},
		{"frame above the limit", binary.AppendUvarint(nil, wire.MaxSessionFrame+2), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, r := open()
			_, err := s.Write(tc.frame)
			require.NoError(t, err)
			typ, payload, err := reply(s, r)
			if tc.typ == 0 {
				require.Error(t, err, "the session should be reset, got frame %d", typ)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.typ, typ)
			switch typ {
			case wire.FrameRefuse:
				var rf wire.Refusal
				require.NoError(t, codec.Unmarshal(payload, &rf))
				assert.Contains(t, rf.Why, tc.says)
			case wire.FrameDone:
				var c wire.Completion
				require.NoError(t, codec.Unmarshal(payload, &c))
				assert.Contains(t, c.Error, tc.says)
				assert.Empty(t, c.Results)
			}
		})
	}

	// The node is unharmed: a good task runs and its result comes back.
	s, r := open()
	_, err = s.Write(appendFrame(nil, wire.FrameSubmit, handoffOf(nap, enc(5))))
	require.NoError(t, err)
	typ, payload, err := reply(s, r)
	require.NoError(t, err)
	require.Equal(t, wire.FrameDone, typ)
	var c wire.Completion
	require.NoError(t, codec.Unmarshal(payload, &c))
	require.Empty(t, c.Error)
	require.Len(t, c.Results, 1)
	var who string
	require.NoError(t, codec.Unmarshal(c.Results[0].Data, &who))
	assert.Equal(t, b.ID(), who)
}
