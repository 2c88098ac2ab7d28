package codec_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/dray-project/dray/codec"
)

// Sample is a user struct; it must be registered before it can travel.
type Sample struct {
	Name    string
	Weights codec.Array
	Count   int `codec:"n"`
}

func init() { codec.MustRegister[Sample]("example.Sample") }

func Example() {
	w, err := codec.NewArray([]int{2}, []float32{0.5, 1.5})
	if err != nil {
		panic(err)
	}
	data, err := codec.Marshal(codec.Tuple{Sample{Name: "s", Weights: w, Count: 3}, "extra"})
	if err != nil {
		panic(err)
	}
	fmt.Println(hex.EncodeToString(data))
	fmt.Println(codec.Sum(data))

	// Decoding into any yields the registered type, not a map.
	var v any
	if err := codec.Unmarshal(data, &v); err != nil {
		panic(err)
	}
	s := v.([]any)[0].(Sample)
	vals, _ := codec.Elems[float32](s.Weights)
	fmt.Println(s.Name, s.Count, vals)

	// Unregistered types are refused with the call to make.
	type Point struct{ X, Y int }
	_, err = codec.Marshal(Point{})
	fmt.Println(err)

	// Errors in the input say where.
	var n int8
	fmt.Println(codec.Unmarshal([]byte{0x19, 0x01, 0x00}, &n))

	js, _ := codec.ToJSONValue(v)
	out, _ := json.Marshal(js)
	fmt.Println(string(out))
	// Output:
	// 82d81b826e6578616d706c652e53616d706c65a3616e03644e616d6561736757656967687473d828828102d855480000003f0000c03f656578747261
	// bafireigbcztgub2ustvvh5tbijitdywmfjymh34j3sfutk4xmrhmwenvyq
	// s 3 [0.5 1.5]
	// codec: unregistered type codec_test.Point: register it with codec.Register[codec_test.Point]("Point")
	// codec: decode at offset 0: cannot decode unsigned integer into int8 (256 overflows int8)
	// [{"Name":"s","Weights":{"dtype":"float32","shape":[2],"data":[0.5,1.5]},"n":3},"extra"]
}
