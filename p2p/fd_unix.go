//go:build unix

package p2p

import "syscall"

// fdLimit returns the process's soft limit on open file descriptors, or 0 if unknown.
func fdLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur > 1<<30 {
		return 1 << 30
	}
	return int(l.Cur)
}
