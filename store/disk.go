package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

const (
	lockName   = ".lock" // exclusive lock file in Dir/objects
	tmpPrefix  = ".tmp-" // temp files being written; removed by Open
	writeChunk = 16 << 20
	dirPerm    = 0o750
)

// openDir prepares s.dir: creates it, locks it, removes stale temp files
// and indexes existing spill files.
func (s *Store) openDir() (err error) {
	if err := os.MkdirAll(s.dir, dirPerm); err != nil {
		return fmt.Errorf("store: create data directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(s.dir, lockName))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = unlockDir(lock)
		}
	}()
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("store: read data directory: %w", err)
	}
	type found struct {
		e   *entry
		mod time.Time
	}
	var files []found
	var temps int
	for _, de := range des {
		name := de.Name()
		switch {
		case name == lockName:
			continue
		case strings.HasPrefix(name, tmpPrefix) && de.Type().IsRegular():
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("store: remove stale temp file: %w", err)
			}
			temps++
			continue
		}
		c, cerr := cid.Decode(name)
		if cerr != nil || c.String() != name || !de.Type().IsRegular() {
			s.log.Warn("store: ignoring unexpected entry in data directory", "dir", s.dir, "name", name)
			continue
		}
		info, ierr := de.Info()
		if ierr != nil {
			continue // removed meanwhile
		}
		e := newEntry(c, info.Size())
		e.onDisk = true
		e.verified = false // written by an earlier run: verified when first read
		files = append(files, found{e, info.ModTime()})
	}
	// Oldest first, so the most recently written file ends at the front.
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	for _, f := range files {
		s.objects[f.e.c] = f.e
		s.diskUnpin.pushFront(f.e)
		s.diskData += f.e.size
		s.diskObjects++
	}
	s.diskUsed = s.diskData
	s.dirLock = lock
	if len(files) > 0 || temps > 0 {
		s.log.Info("store: opened data directory", "dir", s.dir, "objects", len(files),
			"bytes", s.diskData, "stale_temp_files_removed", temps)
	}
	if s.diskBudget > 0 && s.diskData > s.diskBudget {
		s.log.Warn("store: spill files exceed the disk budget; unpinned ones will be removed as space is needed",
			"dir", s.dir, "bytes", s.diskData, "disk_budget", s.diskBudget)
	}
	return nil
}

// path returns the spill file name of c.
func (s *Store) path(c cid.Cid) string {
	return filepath.Join(s.dir, c.String())
}

// writeTemp writes the buffers bufs, in order, to a new temp file in s.dir
// and returns its name. It runs without s.mu.
func (s *Store) writeTemp(ctx context.Context, bufs [][]byte) (name string, err error) {
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("create spill file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			s.removeTemp(f.Name())
		}
	}()
	for _, data := range bufs {
		for off := 0; off < len(data); off += writeChunk {
			if err := ctx.Err(); err != nil {
				return "", err
			}
			if _, err := f.Write(data[off:min(off+writeChunk, len(data))]); err != nil {
				return "", fmt.Errorf("write spill file: %w", err)
			}
		}
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write spill file: %w", err)
	}
	return f.Name(), nil
}

// removeTemp removes temp file name, logging failures ("" is ignored).
func (s *Store) removeTemp(name string) {
	if name == "" {
		return
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("store: removing temp file", "file", name, "err", err)
	}
}

// renameIntoPlace gives temp file tmp the spill file name of c, or removes
// it on failure. Called with s.mu held, so that file names only change
// under the lock.
func (s *Store) renameIntoPlace(tmp string, c cid.Cid) error {
	if err := os.Rename(tmp, s.path(c)); err != nil {
		s.removeTemp(tmp)
		return fmt.Errorf("store: rename spill file: %w", err)
	}
	return nil
}

// commitDiskLocked stores the n bytes of c written to temp file tmp, whose
// disk space is reserved in s.diskUsed; the reservation is consumed.
func (s *Store) commitDiskLocked(c cid.Cid, tmp string, n int64) error {
	e := s.objects[c]
	if e != nil && e.onDisk {
		s.removeTemp(tmp)
		s.diskUsed -= n
		s.touchLocked(e)
		return nil
	}
	if err := s.renameIntoPlace(tmp, c); err != nil {
		s.diskUsed -= n
		return err
	}
	if e == nil {
		e = newEntry(c, n)
		s.objects[c] = e
	} else {
		s.touchLocked(e)
	}
	e.onDisk = true
	s.diskData += n
	s.diskObjects++
	s.spilled++
	s.linkLocked(e)
	return nil
}

// dropDiskLocked removes e's spill file and returns its bytes to the disk
// budget. It does not remove e. The accounting is updated even when the
// file cannot be removed (it is then orphaned until the next Open).
func (s *Store) dropDiskLocked(e *entry) error {
	s.unlinkDiskLocked(e)
	e.onDisk = false
	s.diskData -= e.size
	s.diskUsed -= e.size
	s.diskObjects--
	if err := os.Remove(s.path(e.c)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: remove spill file of %s: %w", e.c, err)
	}
	return nil
}
