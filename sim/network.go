package sim

import (
	"math"
	"math/rand/v2"
	"time"
)

// network is the network model: a one-way latency per link (fixed for the
// run, drawn from a hash of the pair so no N×N table is kept), an uplink
// per peer that serialises the bytes it sends, and loss as retransmissions
// after an RTO.
type network struct {
	cfg     Network
	seed    uint64
	region  []uint8 // per peer, for the matrix model
	uplink  []int64 // per peer: virtual time its uplink is busy until
	bps     float64 // bytes per second of an uplink
	rng     *rand.Rand
	mean    int64 // mean one-way latency (ns), for gossip delivery
	matrixN [][]int64
}

func newNetwork(cfg Network, seed uint64, rng *rand.Rand) *network {
	n := &network{cfg: cfg, seed: seed, rng: rng, bps: cfg.BandwidthMbps * 1e6 / 8}
	if cfg.Latency.Kind == "matrix" {
		n.matrixN = make([][]int64, len(cfg.Matrix))
		for i, row := range cfg.Matrix {
			n.matrixN[i] = make([]int64, len(row))
			for j, v := range row {
				n.matrixN[i][j] = int64(v * 1e6)
			}
		}
	}
	return n
}

// addPeer registers peer i (in index order).
func (n *network) addPeer(i int) {
	n.uplink = append(n.uplink, 0)
	if n.matrixN == nil {
		n.region = append(n.region, 0)
		return
	}
	// Regions by share, interleaved over the indices by a hash so joins
	// land anywhere.
	x := unit(mix(n.seed ^ 0x5eed ^ uint64(i)*0x9e3779b97f4a7c15))
	acc := 0.0
	r := len(n.cfg.Regions) - 1
	for k, reg := range n.cfg.Regions {
		acc += reg.Share
		if x < acc {
			r = k
			break
		}
	}
	n.region = append(n.region, uint8(r))
}

// mix is splitmix64's finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps x to [0,1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// latency is the one-way latency of the link a–b in ns: symmetric and the
// same for the whole run.
func (n *network) latency(a, b int32) int64 {
	if a == b {
		return 0
	}
	lo, hi := uint64(min(a, b)), uint64(max(a, b))
	h := mix(n.seed ^ lo<<32 ^ hi)
	if n.matrixN != nil {
		base := n.matrixN[n.region[a]][n.region[b]]
		j := (unit(h)*2 - 1) * n.cfg.Jitter
		return max(int64(float64(base)*(1+j)), 0)
	}
	return drawDist(n.cfg.Latency, h)
}

// maxDraw bounds a drawn duration (about 146 years), so that a heavy
// tail cannot overflow the virtual clock.
const maxDraw = float64(math.MaxInt64 / 2)

// ns converts a drawn duration to nanoseconds, clamped to [0, maxDraw].
func ns(f float64) int64 {
	if !(f > 0) {
		return 0
	}
	return int64(min(f, maxDraw))
}

// drawDist draws from d using the hash h as its randomness.
func drawDist(d Dist, h uint64) int64 {
	u1 := unit(h)
	switch d.Kind {
	case "constant":
		return int64(d.Mean)
	case "uniform":
		return int64(d.Min) + int64(u1*float64(d.Max-d.Min))
	case "exponential":
		return ns(-math.Log(1-u1) * float64(d.Mean))
	case "normal", "lognormal":
		u2 := unit(mix(h))
		z := math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
		if d.Kind == "normal" {
			return max(ns(float64(d.Mean)+z*float64(d.Stddev)), int64(d.Min))
		}
		// Mean of the lognormal is exp(mu + sigma²/2).
		mu := math.Log(float64(d.Mean)) - d.Sigma*d.Sigma/2
		return ns(math.Exp(mu + d.Sigma*z))
	}
	return int64(d.Mean)
}

// sample draws from d with rng.
func sample(d Dist, rng *rand.Rand) int64 { return drawDist(d, rng.Uint64()) }

// meanOf returns d's mean in ns.
func meanOf(d Dist) float64 {
	switch d.Kind {
	case "uniform":
		return float64(d.Min+d.Max) / 2
	}
	return float64(d.Mean)
}

// meanLatency estimates the mean one-way latency over a sample of links.
func (n *network) meanLatency(peers int) int64 {
	if peers < 2 {
		return 0
	}
	var sum int64
	const k = 1024
	for i := range k {
		a := int32(mix(uint64(i)*2+1) % uint64(peers))
		b := int32(mix(uint64(i)*2+2) % uint64(peers))
		if a == b {
			b = (a + 1) % int32(peers)
		}
		sum += n.latency(a, b)
	}
	return sum / k
}

// delay is the delivery delay of a message of size bytes from a to b sent
// now: queueing on a's uplink, serialisation, latency, and an RTO for each
// loss. It also reports how many retransmissions were needed.
func (n *network) delay(now int64, a, b int32, size int64) (int64, int) {
	d := n.latency(a, b)
	retx := 0
	if n.cfg.Loss > 0 {
		for n.rng.Float64() < n.cfg.Loss && retx < 16 {
			retx++
			d = satAdd(d, int64(n.cfg.RTO))
		}
	}
	if size > 0 && a != b {
		tx := ns(float64(size) / n.bps * float64(time.Second))
		start := max(now, n.uplink[a])
		n.uplink[a] = satAdd(start, tx)
		d = satAdd(d, n.uplink[a]-now)
	}
	return d, retx
}

// satAdd adds two non-negative durations, saturating instead of
// overflowing (absurd scenarios only).
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
