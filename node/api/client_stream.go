package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// Answers with values can be of any size, so these methods read them as a
// stream: each value's JSON is handed over as a reader, its bytes passed
// through as they arrive, never held whole.

// maxSmallJSON bounds the parts of a streamed answer that are read whole
// (refs, object keys).
const maxSmallJSON = 16 << 20

// OpenGet waits for the value of id (at most timeout; 0: no limit) and
// returns a reader of its JSON (what Get returns, then a newline) as the
// node streams it. The caller closes it.
func (c *Client) OpenGet(ctx context.Context, id cid.Cid, timeout time.Duration) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, getPath(id, "", timeout), nil, -1, "")
	if err != nil {
		return nil, err
	}
	if err := checkJSON(resp); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("api: get %s: %w", id, err)
	}
	return resp.Body, nil
}

// CallStream submits a call with req.Wait set and hands each result's JSON
// to each, in order, as a reader of that value only; refs are the call's
// refs (one per result). each need not read the value to its end.
func (c *Client) CallStream(ctx context.Context, req CallRequest, each func(refs []cid.Cid, i int, value io.Reader) error) error {
	req.Wait = true
	resp, err := c.send(ctx, http.MethodPost, "/v1/call", req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := newScanner(resp.Body)
	defer sc.release()
	if err := sc.call(each); err != nil {
		return fmt.Errorf("api: call %s: %w", req.Func, err)
	}
	return sc.end()
}

// MapStream submits a map with req.Wait set and hands each result's JSON
// to each, call by call in order, as CallStream does.
func (c *Client) MapStream(ctx context.Context, req MapRequest, each func(call int, refs []cid.Cid, i int, value io.Reader) error) error {
	req.Wait = true
	resp, err := c.send(ctx, http.MethodPost, "/v1/map", req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := newScanner(resp.Body)
	defer sc.release()
	err = sc.object(func(key string) error {
		if key != "calls" {
			return sc.skip()
		}
		return sc.array(func(k int) error {
			return sc.call(func(refs []cid.Cid, i int, v io.Reader) error { return each(k, refs, i, v) })
		})
	})
	if err != nil {
		return fmt.Errorf("api: map %s: %w", req.Func, err)
	}
	return sc.end()
}

// send posts in as JSON and returns the 200 JSON answer.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	b, err := marshal(in)
	if err != nil {
		return nil, fmt.Errorf("api: encode request %s: %w", path, err)
	}
	resp, err := c.do(ctx, method, path, bytes.NewReader(b), int64(len(b)), "application/json")
	if err != nil {
		return nil, err
	}
	if err := checkJSON(resp); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	return resp, nil
}

func checkJSON(resp *http.Response) error {
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("answer is %q, not JSON (is this a dray node?)", ct)
	}
	return nil
}

// scanner reads a JSON answer as a stream of tokens, handing values over
// as readers.
type scanner struct {
	r *bufio.Reader
}

func newScanner(r io.Reader) *scanner {
	br := scanReaders.Get().(*bufio.Reader)
	br.Reset(r)
	return &scanner{r: br}
}

// release gives the scanner's buffer back; the scanner is unusable after.
func (s *scanner) release() {
	s.r.Reset(nil)
	scanReaders.Put(s.r)
	s.r = nil
}

// scanReaders recycles the answers' read buffers (64 KiB each).
var scanReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

var errSyntax = errors.New("malformed answer")

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// next returns the next byte that is not white space, and consumes it.
func (s *scanner) next() (byte, error) {
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			return 0, eofIsUnexpected(err)
		}
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b, nil
	}
}

// peek returns the next byte that is not white space without consuming it.
func (s *scanner) peek() (byte, error) {
	b, err := s.next()
	if err != nil {
		return 0, err
	}
	return b, s.r.UnreadByte()
}

func (s *scanner) expect(want byte) error {
	b, err := s.next()
	if err != nil {
		return err
	}
	if b != want {
		return fmt.Errorf("%w: got %q, want %q", errSyntax, b, want)
	}
	return nil
}

// end checks that nothing but white space follows the answer.
func (s *scanner) end() error {
	if _, err := s.next(); err != io.ErrUnexpectedEOF {
		if err == nil {
			err = fmt.Errorf("%w: data after the answer", errSyntax)
		}
		return err
	}
	return nil
}

// object reads an object, calling field for each key with the scanner at
// its value, which field must consume.
func (s *scanner) object(field func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if b, err := s.peek(); err != nil || b == '}' {
		if err == nil {
			_, err = s.next()
		}
		return err
	}
	for {
		raw, err := s.small()
		if err != nil {
			return err
		}
		var key string
		if err := json.Unmarshal(raw, &key); err != nil {
			return fmt.Errorf("%w: object key: %v", errSyntax, err)
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		if end, err := s.more('}', "an object"); end || err != nil {
			return err
		}
	}
}

// more reads what follows an element of a list or an object: a comma
// (more follow) or the closing byte (end).
func (s *scanner) more(closing byte, in string) (end bool, err error) {
	b, err := s.next()
	switch {
	case err != nil:
		return false, err
	case b == closing:
		return true, nil
	case b == ',':
		return false, nil
	}
	return false, fmt.Errorf("%w: got %q in %s", errSyntax, b, in)
}

// array reads a list, calling elem for each element with the scanner at
// it, which elem must consume.
func (s *scanner) array(elem func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if b, err := s.peek(); err != nil || b == ']' {
		if err == nil {
			_, err = s.next()
		}
		return err
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return err
		}
		if end, err := s.more(']', "a list"); end || err != nil {
			return err
		}
	}
}

// call reads one CallResult, handing each result to each. The server
// sends "refs" before "results".
func (s *scanner) call(each func(refs []cid.Cid, i int, v io.Reader) error) error {
	var refs []cid.Cid
	return s.object(func(key string) error {
		switch key {
		case "refs":
			raw, err := s.small()
			if err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &refs); err != nil {
				return fmt.Errorf("%w: refs: %v", errSyntax, err)
			}
			return nil
		case "results":
			return s.array(func(i int) error {
				v := s.value()
				if err := each(refs, i, v); err != nil {
					return err
				}
				_, err := io.Copy(io.Discard, v) // the rest each left
				return err
			})
		}
		return s.skip()
	})
}

// small reads a value that must be small, whole.
func (s *scanner) small() ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(s.value(), maxSmallJSON+1))
	if err == nil && len(b) > maxSmallJSON {
		err = fmt.Errorf("%w: a value above %d bytes where a small one was expected", errSyntax, maxSmallJSON)
	}
	return b, err
}

func (s *scanner) skip() error {
	_, err := io.Copy(io.Discard, s.value())
	return err
}

// value returns a reader of the next JSON value's bytes, which ends where
// the value does.
func (s *scanner) value() *valueReader { return &valueReader{r: s.r} }

// valueReader passes one JSON value's bytes through. It checks only what
// it needs to find the value's end: nesting and strings.
type valueReader struct {
	r       *bufio.Reader
	started bool
	done    bool
	depth   int
	inStr   bool
	escaped bool
	scalar  bool // a number, true, false or null
}

func (v *valueReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && !v.done {
		if v.inStr && !v.escaped {
			// Copy a run of plain string bytes at once.
			buf, _ := v.r.Peek(min(v.r.Buffered(), len(p)-n))
			k := bytes.IndexAny(buf, "\"\\")
			if k < 0 {
				k = len(buf)
			}
			if k > 0 {
				n += copy(p[n:], buf[:k])
				_, _ = v.r.Discard(k)
				continue
			}
		}
		b, err := v.r.ReadByte()
		if err != nil {
			if err == io.EOF && v.scalar {
				v.done = true // a number, true, false or null ends the stream
				break
			}
			return n, eofIsUnexpected(err)
		}
		if !v.started {
			switch b {
			case ' ', '\t', '\n', '\r':
				continue
			case '{', '[', '"':
			default:
				v.scalar = true
			}
			v.started = true
		}
		if v.scalar {
			switch b {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				_ = v.r.UnreadByte()
				v.done = true
				continue
			}
			p[n] = b
			n++
			continue
		}
		p[n] = b
		n++
		switch {
		case v.inStr && v.escaped:
			v.escaped = false
		case v.inStr && b == '\\':
			v.escaped = true
		case v.inStr && b == '"':
			v.inStr = false
		case v.inStr:
		case b == '"':
			v.inStr = true
		case b == '{' || b == '[':
			v.depth++
		case b == '}' || b == ']':
			v.depth--
			if v.depth < 0 {
				return n, fmt.Errorf("%w: unexpected %q", errSyntax, b)
			}
		}
		if v.depth == 0 && !v.inStr {
			v.done = true
		}
	}
	if n == 0 && v.done {
		return 0, io.EOF
	}
	return n, nil
}
