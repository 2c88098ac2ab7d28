//go:build unix

package store

import "syscall"

// procUsage returns the CPU time and page faults of the process so far.
func procUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{
		cpu:    float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9,
		faults: int64(ru.Minflt),
		ok:     true,
	}
}
