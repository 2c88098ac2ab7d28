package api

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScannerSplitsValues reads answers with the streaming scanner, one
// byte at a time too, and checks that each value comes out exactly as
// encoding/json delimits it.
func TestScannerSplitsValues(t *testing.T) {
	const ref = `{"/":"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}`
	answers := []string{
		`{"refs":[` + ref + `],"results":[3]}`,
		`{"refs":[` + ref + `,` + ref + `],"results":[-1.5e3,"a\"b\\",{"x":[1,{}],"y":"]}"},true,null,[],{"/":{"bytes":"YWJj"}}]}` + "\n",
		` { "extra" : {"a":[1,2]} , "refs" : [ ] , "results" : [ 1 , "x" ] } `,
	}
	for _, a := range answers {
		var want CallResult
		require.NoError(t, json.Unmarshal([]byte(a), &want), a)
		for _, r := range []io.Reader{strings.NewReader(a), iotest.OneByteReader(strings.NewReader(a)), iotest.HalfReader(strings.NewReader(a))} {
			var got []string
			var refs []cid.Cid
			sc := newScanner(r)
			err := sc.call(func(rs []cid.Cid, i int, v io.Reader) error {
				refs = rs
				b, err := io.ReadAll(v)
				got = append(got, string(b))
				return err
			})
			require.NoError(t, err, a)
			require.NoError(t, sc.end())
			assert.Equal(t, want.Refs, nonNilCids(refs))
			assert.Equal(t, strs(want.Results), got, a)
		}
	}
	m := `{"calls":[{"refs":[],"results":[1,2]},{"refs":[],"results":["3"]}]}`
	var got []string
	sc := newScanner(iotest.OneByteReader(strings.NewReader(m)))
	require.NoError(t, sc.object(func(key string) error {
		return sc.array(func(k int) error {
			return sc.call(func(_ []cid.Cid, i int, v io.Reader) error {
				if k == 0 && i == 0 {
					return nil // left unread: the scanner skips it
				}
				b, err := io.ReadAll(v)
				got = append(got, string(b))
				return err
			})
		})
	}))
	assert.Equal(t, []string{"2", `"3"`}, got)

	for _, bad := range []string{`{"refs":[],"results":[1,`, `{"refs":[],"results":["ab`, `{"refs":[],"results":[1}`, `[1]`} {
		sc := newScanner(strings.NewReader(bad))
		err := sc.call(func(_ []cid.Cid, _ int, v io.Reader) error { _, err := io.ReadAll(v); return err })
		assert.Error(t, err, bad)
	}
}

func nonNilCids(c []cid.Cid) []cid.Cid {
	if c == nil {
		return []cid.Cid{}
	}
	return c
}

func strs(rs []json.RawMessage) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, string(r))
	}
	return out
}
