package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// The reprovider (Host.StartReprovider): the provider's keystore synced
// now and then with the CIDs the host still holds (KeySource), so that
// what it no longer holds stops being reprovided and what it holds is.

// KeySource lists the CIDs a host still holds, for StartReprovider: it calls yield
// for each and stops early (returning nil) when yield returns false, or when ctx ends
// (the host closes). yield waits while the keystore takes the CIDs in, so a source
// should not hold locks the rest of the program needs while it iterates. An error
// abandons the keystore sync: the keystore keeps its previous content.
type KeySource func(ctx context.Context, yield func(cid.Cid) bool) error

// StartReprovider syncs the provider's keystore with keys now and then every
// interval (DefaultReprovideInterval if zero): the keystore's content is replaced by
// the CIDs keys yields, concurrent Announce calls included (go-libp2p-kad-dht's
// ResettableKeystore.ResetCids, as kubo does it). CIDs the host no longer holds stop
// being reprovided, and held CIDs missing from the keystore (after a restart: the
// keystore lives in memory) join the reprovide sweep. The sweep itself reprovides the
// keystore every DefaultReprovideInterval whatever interval is; a CID that enters the
// keystore only through a sync is first provided when its region's turn comes (or
// when the provider first comes online), so announce new CIDs with Announce.
//
// Without a reprovider, every CID announced stays in the keystore, and is
// reprovided, until the host closes. It can be started once per Host.
func (n *Host) StartReprovider(interval time.Duration, keys KeySource) error {
	if keys == nil {
		return errors.New("p2p: start reprovider: nil key source")
	}
	if interval < 0 {
		return fmt.Errorf("p2p: start reprovider: negative interval %v", interval)
	}
	if interval == 0 {
		interval = DefaultReprovideInterval
	}
	return n.ann.startReprovider(interval, keys)
}

func (a *announcer) startReprovider(interval time.Duration, src KeySource) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("p2p: start reprovider: %w", ErrClosed)
	}
	if a.reprov {
		return errors.New("p2p: start reprovider: already started")
	}
	a.reprov = true
	a.wg.Go(func() { a.syncLoop(interval, src) })
	return nil
}

// syncLoop syncs the keystore with src now, then every interval.
func (a *announcer) syncLoop(interval time.Duration, src KeySource) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n, err := a.syncKeystore(src)
		if a.ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Warn("reprovide: keystore sync failed, keeping the previous keys", "err", err, "listed", n)
		} else {
			a.log.Debug("reprovide: keystore synced", "cids", n, "took", time.Since(start))
		}
		t.Reset(interval)
	}
}

// syncKeystore replaces the keystore's content with the CIDs src lists, and has the
// provider schedule the regions of new ones. It returns how many CIDs src listed.
//
// ResetCids must not see its context end while it starts: kad-dht v0.42.2 then
// wedges the keystore's worker for good (it answers the start on an unbuffered
// channel ResetCids no longer reads), and Close with it. ResetCids only reads the
// CID channel once started, so the channel is unbuffered and the reset is aborted
// (a failing source, or the host closing) only after it took a CID from it: the
// abortSentinel if need be, which lands in the keystore's scratch namespace that the
// abort discards.
func (a *announcer) syncKeystore(src KeySource) (int, error) {
	resetCtx, abortReset := context.WithCancel(context.Background())
	defer abortReset()
	ch := make(chan cid.Cid)
	resetDone := make(chan struct{})
	var (
		listed int
		srcErr error
		fed    = make(chan struct{})
	)
	go func() {
		defer close(fed)
		started := false
		send := func(c cid.Cid) bool {
			select {
			case ch <- c:
				started = true
				return true
			case <-resetDone: // the reset failed to start
				return false
			}
		}
		srcErr = src(a.ctx, func(c cid.Cid) bool {
			if a.ctx.Err() != nil {
				return false
			}
			if !c.Defined() {
				return true
			}
			if !send(c) {
				return false
			}
			listed++
			return true
		})
		if srcErr == nil && a.ctx.Err() == nil {
			close(ch) // the end of the list: the reset completes
			return
		}
		if !started {
			send(abortSentinel)
		}
		abortReset() // the keystore keeps its keys
	}()
	err := a.ks.ResetCids(resetCtx, ch)
	close(resetDone)
	<-fed
	if srcErr != nil {
		return listed, fmt.Errorf("p2p: list held CIDs: %w", srcErr)
	}
	if err != nil {
		return listed, fmt.Errorf("p2p: reset provider keystore: %w", err)
	}
	a.mu.Lock()
	sp := a.sp
	a.mu.Unlock()
	if sp != nil {
		if err := sp.RefreshSchedule(); err != nil {
			return listed, fmt.Errorf("p2p: refresh reprovide schedule: %w", err)
		}
	}
	return listed, nil
}

// abortSentinel is fed to an aborted keystore reset that has not taken a CID yet:
// an identity multihash of a constant.
var abortSentinel = cid.NewCidV1(cid.Raw, mh.Multihash(append([]byte{mh.IDENTITY, 13}, "dray: aborted"...)))
