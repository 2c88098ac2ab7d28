package p2p

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrame checks that ReadFrame never panics, never returns a payload above the
// limit, returns only the documented errors, and that every frame it accepts
// re-encodes to exactly the bytes it consumed (the encoding is canonical).
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{3, 5, 'a', 'b'}, uint16(10))
	f.Add([]byte{0}, uint16(10))
	f.Add([]byte{0x80}, uint16(10))
	f.Add([]byte{0x83, 0x00, 1, 'a', 'b'}, uint16(10))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, uint16(1000))
	f.Add([]byte{1, 9, 2, 8, 'x'}, uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, max16 uint16) {
		max := int(max16)
		for _, buffered := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(data)
			if buffered {
				r = bufio.NewReaderSize(r, 16)
			}
			consumed := 0
			for {
				typ, payload, err := ReadFrame(r, max)
				if err != nil {
					var fe *FrameTooLargeError
					switch {
					case errors.Is(err, io.EOF) && consumed == len(data):
					case errors.Is(err, ErrTruncatedFrame), errors.Is(err, ErrEmptyFrame),
						errors.Is(err, ErrBadFrameLength), errors.As(err, &fe):
					default:
						t.Fatalf("unexpected error %v", err)
					}
					break
				}
				if len(payload) > max {
					t.Fatalf("payload of %d bytes above limit %d", len(payload), max)
				}
				var buf bytes.Buffer
				if err := WriteFrame(&buf, typ, payload); err != nil {
					t.Fatal(err)
				}
				end := consumed + buf.Len()
				if end > len(data) || !bytes.Equal(buf.Bytes(), data[consumed:end]) {
					t.Fatalf("frame at %d does not re-encode to its input", consumed)
				}
				consumed = end
			}
		}
	})
}
