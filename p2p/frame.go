package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Frame layout: [uvarint n][type byte][payload], where n = 1 + len(payload) counts the
// type byte and the payload. n is minimally encoded (as in multiformats unsigned-varint),
// so every frame has exactly one encoding.

// DefaultMaxFrame is a sensible payload limit for control messages of dray's stream
// protocols (task hand-off, completion, fetch requests). Bulk bytes should be streamed,
// not framed.
const DefaultMaxFrame = 1 << 20

// maxVarintLen is the longest uvarint ReadFrame accepts (9 bytes covers 2^63-1, the
// multiformats limit).
const maxVarintLen = 9

// smallFrame is the payload size up to which WriteFrame copies header and payload into
// one pooled buffer so that a stream sees a single Write (one yamux/QUIC frame).
const smallFrame = 32 << 10

// readChunk bounds how much ReadFrame allocates ahead of the bytes actually received,
// so a peer that announces a large (but allowed) frame and then stalls or hangs up
// cannot make us allocate the whole announced size.
const readChunk = 1 << 20

var (
	// ErrEmptyFrame is returned by ReadFrame for a frame whose length is zero: every
	// frame carries at least its type byte.
	ErrEmptyFrame = errors.New("p2p: empty frame (length 0, no type byte)")
	// ErrTruncatedFrame is returned by ReadFrame when the reader ends inside a frame.
	// It is returned joined with io.ErrUnexpectedEOF.
	ErrTruncatedFrame = errors.New("p2p: truncated frame")
	// ErrBadFrameLength is returned by ReadFrame for a length prefix that is not a
	// minimally encoded unsigned varint of at most 9 bytes.
	ErrBadFrameLength = errors.New("p2p: malformed frame length")
)

// FrameTooLargeError reports a frame whose payload exceeds the reader's limit. ReadFrame
// returns it after reading only the length prefix, before allocating anything; the
// stream is then out of sync and should be reset.
type FrameTooLargeError struct {
	Size uint64 // announced payload size in bytes
	Max  int    // the limit passed to ReadFrame
}

// Error implements error.
func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("p2p: frame payload of %d bytes exceeds the limit of %d bytes", e.Size, e.Max)
}

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// WriteFrame writes one frame, [uvarint 1+len(payload)][typ][payload], to w. Frames with
// payloads up to 32 KiB are written with a single Write call; larger payloads are written
// as header then payload, without copying the payload.
func WriteFrame(w io.Writer, typ uint8, payload []byte) error {
	var hdr [binary.MaxVarintLen64 + 1]byte
	n := binary.PutUvarint(hdr[:], uint64(len(payload))+1)
	hdr[n] = typ
	n++
	if len(payload) > smallFrame {
		if _, err := w.Write(hdr[:n]); err != nil {
			return fmt.Errorf("p2p: write frame header: %w", err)
		}
		if _, err := w.Write(payload); err != nil {
			return fmt.Errorf("p2p: write frame payload: %w", err)
		}
		return nil
	}
	bp := writeBufPool.Get().(*[]byte)
	buf := append(append((*bp)[:0], hdr[:n]...), payload...)
	_, err := w.Write(buf)
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		writeBufPool.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("p2p: write frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame written by WriteFrame and returns its type and payload. The
// payload is a new slice owned by the caller.
//
// max bounds the payload size: a larger announced size yields a *FrameTooLargeError
// before any allocation. A reader that ends cleanly before the first byte yields io.EOF;
// one that ends inside a frame yields an error matching both ErrTruncatedFrame and
// io.ErrUnexpectedEOF. A zero length yields ErrEmptyFrame and a malformed length
// ErrBadFrameLength. A negative max is an error.
//
// If r is an io.ByteReader (such as a *bufio.Reader or a FrameReader's buffer) the
// length prefix is read byte by byte from it; otherwise it is read with single-byte Read
// calls, so ReadFrame never consumes bytes beyond the frame.
func ReadFrame(r io.Reader, max int) (typ uint8, payload []byte, err error) {
	if max < 0 {
		return 0, nil, fmt.Errorf("p2p: read frame: negative limit %d", max)
	}
	n, err := readLength(r)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		return 0, nil, ErrEmptyFrame
	}
	size := n - 1
	if size > uint64(max) {
		return 0, nil, &FrameTooLargeError{Size: size, Max: max}
	}
	var tb [1]byte
	if err := readFull(r, tb[:]); err != nil {
		return 0, nil, truncated("type byte", err)
	}
	payload, err = readPayload(r, int(size))
	if err != nil {
		return 0, nil, err
	}
	return tb[0], payload, nil
}

// readLength reads the minimally encoded uvarint length prefix.
func readLength(r io.Reader) (uint64, error) {
	br, _ := r.(io.ByteReader)
	var one [1]byte
	var x uint64
	var s uint
	for i := 0; ; i++ {
		var b byte
		if br != nil {
			c, err := br.ReadByte()
			if err != nil {
				if i == 0 && errors.Is(err, io.EOF) {
					return 0, io.EOF
				}
				return 0, truncated("length", err)
			}
			b = c
		} else {
			if err := readFull(r, one[:]); err != nil {
				if i == 0 && errors.Is(err, io.EOF) {
					return 0, io.EOF
				}
				return 0, truncated("length", err)
			}
			b = one[0]
		}
		if i == maxVarintLen-1 && b >= 0x80 {
			return 0, fmt.Errorf("%w: longer than %d bytes", ErrBadFrameLength, maxVarintLen)
		}
		x |= uint64(b&0x7f) << s
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: not minimally encoded", ErrBadFrameLength)
			}
			return x, nil
		}
		s += 7
	}
}

// readFull is io.ReadFull that reports io.EOF only when nothing was read.
func readFull(r io.Reader, p []byte) error {
	_, err := io.ReadFull(r, p)
	return err
}

// readPayload reads size bytes, growing the buffer as bytes arrive so that a lying
// length costs at most readChunk bytes of memory before the reader fails.
func readPayload(r io.Reader, size int) ([]byte, error) {
	if size <= readChunk {
		buf := make([]byte, size)
		if err := readFull(r, buf); err != nil {
			return nil, truncated("payload", err)
		}
		return buf, nil
	}
	buf := make([]byte, 0, readChunk)
	for len(buf) < size {
		if len(buf) == cap(buf) {
			newCap := min(2*cap(buf), size)
			nb := make([]byte, len(buf), newCap)
			copy(nb, buf)
			buf = nb
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if len(buf) == size && errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, truncated("payload", err)
		}
	}
	return buf, nil
}

func truncated(part string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: reader ended inside the frame %s: %w", ErrTruncatedFrame, part, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("p2p: read frame %s: %w", part, err)
}

var bufReaderPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

// FrameReader reads a sequence of frames through a pooled 16 KiB buffer, so a frame's
// length, type and small payload cost one Read on the underlying stream instead of
// several. It may read ahead of the current frame; use it for every subsequent read of
// the stream. Call Release when done to return the buffer to the pool.
type FrameReader struct {
	br  *bufio.Reader
	max int
}

// NewFrameReader returns a FrameReader on r whose frames are limited to max payload bytes.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	br := bufReaderPool.Get().(*bufio.Reader)
	br.Reset(r)
	return &FrameReader{br: br, max: max}
}

// Read reads the next frame, with the same results as ReadFrame.
func (f *FrameReader) Read() (typ uint8, payload []byte, err error) {
	if f.br == nil {
		return 0, nil, errors.New("p2p: read frame: FrameReader used after Release")
	}
	return ReadFrame(f.br, f.max)
}

// Buffered returns the reader that holds bytes read ahead of the last frame, for a
// protocol that switches from frames to raw bytes on the same stream (for example an
// object transfer following its header frame). It is valid until Release.
func (f *FrameReader) Buffered() io.Reader { return f.br }

// Release returns the buffer to the pool. Bytes read ahead and not consumed are lost.
// The FrameReader must not be used afterwards.
func (f *FrameReader) Release() {
	if f.br == nil {
		return
	}
	f.br.Reset(nil)
	bufReaderPool.Put(f.br)
	f.br = nil
}
