package p2p

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		typ     uint8
		payload []byte
	}{
		{"empty payload", 1, nil},
		{"one byte", 0, []byte{0}},
		{"type 255", 255, []byte("hello")},
		{"126 bytes (1-byte length edge)", 7, bytes.Repeat([]byte{0xaa}, 126)},
		{"127 bytes (2-byte length)", 7, bytes.Repeat([]byte{0xbb}, 127)},
		{"small frame limit", 9, bytes.Repeat([]byte{1}, smallFrame)},
		{"above small frame limit", 9, bytes.Repeat([]byte{2}, smallFrame+1)},
		{"above read chunk", 3, bytes.Repeat([]byte{3}, readChunk+12345)},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"bufio", func(r io.Reader) io.Reader { return bufio.NewReader(r) }},
		{"one byte at a time", iotest.OneByteReader},
		{"data+EOF", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				var buf bytes.Buffer
				require.NoError(t, WriteFrame(&buf, tt.typ, tt.payload))
				require.NoError(t, WriteFrame(&buf, 42, []byte("next")))
				r := rd.wrap(&buf)
				typ, payload, err := ReadFrame(r, len(tt.payload))
				require.NoError(t, err)
				assert.Equal(t, tt.typ, typ)
				assert.Equal(t, len(tt.payload), len(payload))
				assert.True(t, bytes.Equal(tt.payload, payload), "payload differs")
				typ, payload, err = ReadFrame(r, 100)
				require.NoError(t, err)
				assert.Equal(t, uint8(42), typ)
				assert.Equal(t, "next", string(payload))
				_, _, err = ReadFrame(r, 100)
				assert.ErrorIs(t, err, io.EOF)
			})
		}
	}
}

func TestFrameEncoding(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteFrame(&buf, 5, []byte("ab")))
	assert.Equal(t, []byte{3, 5, 'a', 'b'}, buf.Bytes())
	buf.Reset()
	require.NoError(t, WriteFrame(&buf, 1, make([]byte, 127)))
	assert.Equal(t, []byte{0x80, 0x01, 1}, buf.Bytes()[:3], "length 128 as a two-byte uvarint")
}

func TestReadFrameErrors(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		max   int
		check func(t *testing.T, err error)
	}{
		{"clean EOF", nil, 10, func(t *testing.T, err error) {
			assert.Equal(t, io.EOF, err)
		}},
		{"zero length", []byte{0}, 10, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrEmptyFrame)
		}},
		{"too large", []byte{12, 1}, 10, func(t *testing.T, err error) {
			var fe *FrameTooLargeError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, uint64(11), fe.Size)
			assert.Equal(t, 10, fe.Max)
			assert.Contains(t, err.Error(), "11 bytes exceeds the limit of 10")
		}},
		{"huge length refused before allocating", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 1 << 20, func(t *testing.T, err error) {
			var fe *FrameTooLargeError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, uint64(1<<63-2), fe.Size)
		}},
		{"zero max allows only empty payloads", []byte{2, 1, 0}, 0, func(t *testing.T, err error) {
			var fe *FrameTooLargeError
			assert.ErrorAs(t, err, &fe)
		}},
		{"truncated length", []byte{0x80}, 10, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrTruncatedFrame)
			assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		}},
		{"truncated before type", []byte{3}, 10, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrTruncatedFrame)
			assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		}},
		{"truncated payload", []byte{4, 1, 'a'}, 10, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrTruncatedFrame)
			assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
			assert.Contains(t, err.Error(), "payload")
		}},
		{"truncated large payload", append([]byte{0x80, 0x80, 0x80, 0x02, 1}, make([]byte, 1000)...), 8 << 20, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrTruncatedFrame)
		}},
		{"non-minimal length", []byte{0x83, 0x00, 1, 'a', 'b'}, 10, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrBadFrameLength)
		}},
		{"length longer than 9 bytes", bytes.Repeat([]byte{0x80}, 10), 10, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrBadFrameLength)
		}},
		{"negative max", []byte{1, 1}, -1, func(t *testing.T, err error) {
			assert.ErrorContains(t, err, "negative limit")
		}},
	}
	for _, tt := range tests {
		for _, buffered := range []bool{false, true} {
			name := tt.name
			if buffered {
				name += "/bufio"
			}
			t.Run(name, func(t *testing.T) {
				var r io.Reader = bytes.NewReader(tt.input)
				if buffered {
					r = bufio.NewReader(r)
				}
				typ, payload, err := ReadFrame(r, tt.max)
				require.Error(t, err)
				assert.Zero(t, typ)
				assert.Nil(t, payload)
				tt.check(t, err)
			})
		}
	}
}

func TestReadFrameReaderError(t *testing.T) {
	boom := errors.New("boom")
	_, _, err := ReadFrame(iotest.ErrReader(boom), 10)
	assert.ErrorIs(t, err, boom)
	assert.NotErrorIs(t, err, ErrTruncatedFrame)

	r := io.MultiReader(bytes.NewReader([]byte{5, 1, 'a'}), iotest.ErrReader(boom))
	_, _, err = ReadFrame(r, 10)
	assert.ErrorIs(t, err, boom)
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk on fire")
	}
	w.after--
	return len(p), nil
}

func TestWriteFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		after   int
		payload int
		want    string
	}{
		{"small", 0, 10, "write frame"},
		{"large header", 0, smallFrame + 1, "frame header"},
		{"large payload", 1, smallFrame + 1, "frame payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteFrame(&failWriter{after: tc.after}, 1, make([]byte, tc.payload))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "disk on fire")
		})
	}
}

func TestFrameReader(t *testing.T) {
	var buf bytes.Buffer
	for i := range 100 {
		require.NoError(t, WriteFrame(&buf, uint8(i), bytes.Repeat([]byte{byte(i)}, i*50)))
	}
	buf.WriteString("raw tail")
	fr := NewFrameReader(&buf, 10000)
	for i := range 100 {
		typ, payload, err := fr.Read()
		require.NoError(t, err)
		require.Equal(t, uint8(i), typ)
		require.Len(t, payload, i*50)
	}
	tail, err := io.ReadAll(fr.Buffered())
	require.NoError(t, err)
	assert.Equal(t, "raw tail", string(tail))
	fr.Release()
	fr.Release() // idempotent
	_, _, err = fr.Read()
	assert.ErrorContains(t, err, "after Release")

	fr = NewFrameReader(strings.NewReader("\x05\x01ab"), 10)
	defer fr.Release()
	_, _, err = fr.Read()
	assert.ErrorIs(t, err, ErrTruncatedFrame)
}
