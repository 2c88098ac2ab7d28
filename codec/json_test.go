package codec

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestToJSONValue(t *testing.T) {
	cs := testCid.String()
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, `null`},
		{"scalars", Tuple{true, int64(-1), uint64(math.MaxUint64), 1.5, "s"}, `[true,-1,18446744073709551615,1.5,"s"]`},
		{"cid", testCid, `{"/":"` + cs + `"}`},
		{"undefined cid", cid.Undef, `null`},
		{"linker", Ref{c: testCid}, `{"/":"` + cs + `"}`},
		{"bytes", []byte{0xfb, 0xff}, `{"/":{"bytes":"+/8"}}`},
		{"fixed bytes", [2]byte{0xfb, 0xff}, `{"/":{"bytes":"+/8"}}`},
		{"array", mustArray(t, []int{2}, []int32{1, 2}), `{"dtype":"int32","shape":[2],"data":[1,2]}`},
		{"zero array", Array{}, `null`},
		{"struct", Line{Points: []Point{{1, 2}}, Label: "l"}, `{"Points":[{"X":1,"Y":2}],"label":"l"}`},
		{"binary", Bin{a: 1, b: 2}, `{"/":{"bytes":"AAAAAQAAAAI"}}`},
		{"int keys", map[int]string{1: "a", -2: "b"}, `{"-2":"b","1":"a"}`},
		{"any keys", map[any]any{int64(1): true, "x": nil, false: 0}, `{"1":true,"false":0,"x":null}`},
		{"raw", Raw(h("a1 6161 d82a 5825 00" + hexOf(testCid.Bytes()))), `{"a":{"/":"` + cs + `"}}`},
		{"pointer", &Point{X: 1}, `{"X":1,"Y":0}`},
		{"nil pointer", (*Point)(nil), `null`},
		{"typed slice", []float32{0.5}, `[0.5]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jv, err := ToJSONValue(tt.v)
			require.NoError(t, err)
			js, err := json.Marshal(jv)
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, string(js))
		})
	}

	// A decoded dynamic value converts the same as the typed one.
	b, err := Marshal(everything(t))
	require.NoError(t, err)
	var dyn any
	require.NoError(t, Unmarshal(b, &dyn))
	jd, err := ToJSONValue(dyn)
	require.NoError(t, err)
	_, err = json.Marshal(jd)
	require.NoError(t, err)

	bad := map[string]any{
		"NaN":          math.NaN(),
		"Inf in list":  []any{math.Inf(1)},
		"key clash":    map[any]int{int64(1): 1, "1": 2},
		"unregistered": struct{ A int }{},
		"func":         func() {},
		"bad array":    Array{DType: Int8, Shape: []int{3}},
		"bad raw":      Raw{0x82},
	}
	for name, v := range bad {
		t.Run("bad "+name, func(t *testing.T) {
			_, err := ToJSONValue(v)
			require.Error(t, err)
		})
	}
}
