package cli

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func bytesValueJSON(n int) string {
	return bytesJSONPrefix + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, n)) + `"}}`
}

// TestCopyValueTerminal: a byte string above 1 MiB is refused on a
// terminal with nothing written; 1 MiB, other values and pipes pass.
func TestCopyValueTerminal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		value  string
		tty    bool
		refuse bool
	}{
		{"1 MiB on a terminal", bytesValueJSON(1 << 20), true, false},
		{"1 MiB + 1 on a terminal", bytesValueJSON(1<<20 + 1), true, true},
		{"1 MiB + 1 piped", bytesValueJSON(1<<20 + 1), false, false},
		{"long string on a terminal", `"` + strings.Repeat("x", 2<<20) + `"`, true, false},
		{"long list on a terminal", `[` + strings.Repeat("1,", 1<<20) + `1]`, true, false},
		{"small", `3`, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := copyValue(&out, strings.NewReader(tc.value), tc.tty, "use --out FILE")
			if tc.refuse {
				var bt *errBinaryTerminal
				require.True(t, errors.As(err, &bt), "err %v", err)
				assert.Contains(t, err.Error(), "binary output can mess up your terminal; use --out FILE")
				assert.Zero(t, out.Len(), "something was printed")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.value, out.String())
		})
	}
}
