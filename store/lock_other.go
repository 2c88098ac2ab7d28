//go:build !unix

package store

import (
	"fmt"
	"os"
)

// lockDir opens the lock file at path. On this platform the directory is
// not locked against other processes.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open lock file: %w", err)
	}
	return f, nil
}

// unlockDir releases a lock taken by lockDir.
func unlockDir(f *os.File) error { return f.Close() }
