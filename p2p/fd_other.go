//go:build !unix

package p2p

// fdLimit returns 0 (unknown) where the descriptor limit cannot be queried.
func fdLimit() int { return 0 }
