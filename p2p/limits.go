package p2p

import (
	"maps"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/pbnjay/memory"
)

// Resource limits floor: below these budgets libp2p's base limits apply unscaled.
const (
	minMemoryBudget = 128 << 20
	minFDBudget     = 256
)

// ResourceLimits returns the resource manager limits a Host uses for a budget of
// maxMemory bytes and maxFD file descriptors (zero: 1/8 of the machine's RAM and 1/2 of
// the process's descriptor limit, as libp2p's AutoScale).
//
// The limits are go-libp2p's defaults (including its per-service limits for identify,
// ping, relay and so on) scaled to that budget, then made explicit for one peer:
//
//   - connections per peer: 8 inbound, 8 outbound, 8 in all (libp2p's base, not scaled);
//   - streams per peer: libp2p's scaled defaults (about 256+128/GiB inbound,
//     512+256/GiB outbound);
//   - memory per peer: libp2p's scaled default, but never more than a quarter of the
//     whole budget, so one peer cannot starve the others.
//
// System-wide connection, stream, memory and descriptor limits are libp2p's scaled
// defaults. Nothing is allow-listed. The result can be inspected with
// ToPartialLimitConfig.
func ResourceLimits(maxMemory int64, maxFD int) rcmgr.ConcreteLimitConfig {
	if maxMemory <= 0 {
		maxMemory = int64(memory.TotalMemory() / 8)
	}
	if maxFD <= 0 {
		maxFD = fdLimit() / 2
	}
	maxMemory = max(maxMemory, minMemoryBudget)
	maxFD = max(maxFD, minFDBudget)

	// Copy the defaults, cloning the maps SetDefaultServiceLimits writes into so the
	// package-level DefaultLimits are never shared or mutated.
	base := rcmgr.DefaultLimits
	base.ServiceLimits = maps.Clone(base.ServiceLimits)
	base.ServicePeerLimits = maps.Clone(base.ServicePeerLimits)
	base.ProtocolLimits = maps.Clone(base.ProtocolLimits)
	base.ProtocolPeerLimits = maps.Clone(base.ProtocolPeerLimits)
	base.PeerLimits = maps.Clone(base.PeerLimits)
	libp2p.SetDefaultServiceLimits(&base)
	scaled := base.Scale(maxMemory, maxFD)

	peerDefault := scaled.ToPartialLimitConfig().PeerDefault
	peerMem := int64(peerDefault.Memory)
	if quarter := maxMemory / 4; peerMem > quarter {
		peerMem = quarter
	}
	explicit := rcmgr.PartialLimitConfig{
		PeerDefault: rcmgr.ResourceLimits{
			ConnsInbound:  8,
			ConnsOutbound: 8,
			Conns:         8,
			Memory:        rcmgr.LimitVal64(peerMem),
		},
	}
	return explicit.Build(scaled)
}

// newResourceManager builds the resource manager for a Host: fixed limits from
// ResourceLimits, an empty allow-list, metrics off (no global Prometheus registration).
func newResourceManager(maxMemory int64, maxFD int) (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(ResourceLimits(maxMemory, maxFD)), rcmgr.WithMetricsDisabled())
}
