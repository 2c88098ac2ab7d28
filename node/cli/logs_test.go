package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestHeldLogs checks that held records come out in order, with their
// attributes and groups, on release; vanish on drop; and that records
// logged after either pass straight through.
func TestHeldLogs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release bool
		want    []string
	}{
		{"release", true, []string{"msg=one n=1", "msg=two c.k=v", "msg=three"}},
		{"drop", false, []string{"msg=three"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
						return slog.Attr{}
					}
					return a
				},
			}))
			l, held := hold(base)
			l.Warn("one", "n", 1)
			l.WithGroup("c").Warn("two", "k", "v")
			assert.Empty(t, buf.String(), "held records were written")
			if tc.release {
				held.release(context.Background())
			} else {
				held.drop()
			}
			l.Warn("three")
			assert.Equal(t, tc.want, strings.Split(strings.TrimSpace(buf.String()), "\n"))
		})
	}
}
