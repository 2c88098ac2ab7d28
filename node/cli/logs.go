package cli

import (
	"context"
	"log/slog"
	"sync"
)

// heldLogs holds log records while a start-up step runs, so that a step
// that fails does not print its warnings on top of the error line that
// already says what went wrong (`dray node --listen` on an address it
// cannot bind: a warning per address, then the error). Once released, the
// held records go out in order and later ones pass straight through; once
// dropped, the held records are forgotten and later ones pass through.
type heldLogs struct {
	mu      sync.Mutex
	holding bool
	held    []heldRecord
}

// heldRecord is a record and the handler (with its attributes and groups)
// it was logged to.
type heldRecord struct {
	h slog.Handler
	r slog.Record
}

// hold returns a logger that writes to l's handler, holding the records
// until release or drop.
func hold(l *slog.Logger) (*slog.Logger, *heldLogs) {
	s := &heldLogs{holding: true}
	return slog.New(&holdHandler{inner: l.Handler(), s: s}), s
}

// release writes the held records and lets later ones through.
func (s *heldLogs) release(ctx context.Context) {
	s.mu.Lock()
	held := s.held
	s.held, s.holding = nil, false
	s.mu.Unlock()
	for _, hr := range held {
		_ = hr.h.Handle(ctx, hr.r)
	}
}

// drop forgets the held records and lets later ones through.
func (s *heldLogs) drop() {
	s.mu.Lock()
	s.held, s.holding = nil, false
	s.mu.Unlock()
}

// holdHandler is the slog.Handler of hold.
type holdHandler struct {
	inner slog.Handler
	s     *heldLogs
}

func (h *holdHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *holdHandler) Handle(ctx context.Context, r slog.Record) error {
	h.s.mu.Lock()
	if h.s.holding {
		h.s.held = append(h.s.held, heldRecord{h: h.inner, r: r.Clone()})
		h.s.mu.Unlock()
		return nil
	}
	h.s.mu.Unlock()
	return h.inner.Handle(ctx, r)
}

func (h *holdHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &holdHandler{inner: h.inner.WithAttrs(attrs), s: h.s}
}

func (h *holdHandler) WithGroup(name string) slog.Handler {
	return &holdHandler{inner: h.inner.WithGroup(name), s: h.s}
}
