package cli

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestErrorLine checks that an error with several lines prints as one.
func TestErrorLine(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("bad CID"), "dray: bad CID"},
		{errors.New("dray: already prefixed"), "dray: already prefixed"},
		{errors.Join(errors.New("fetch: peer gone"), errors.New("lookup: no provider")), "dray: fetch: peer gone; lookup: no provider"},
		{errors.New("trailing newline\n"), "dray: trailing newline"},
		{errors.New("a\r\n\nb"), "dray: a; b"},
	} {
		assert.Equal(t, tc.want, errorLine("dray", tc.err))
	}
}
