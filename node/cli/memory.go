package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// parseMemory reads a byte size ("512MiB", "2GB", "1048576") or a share of
// total system memory ("25%").
func parseMemory(s string, total int64) (int64, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 100 {
			return 0, fmt.Errorf("want a share in (0, 100]%%")
		}
		return int64(float64(total) * f / 100), nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if p, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(p), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("want a positive size such as 512MiB, 2GB or 25%%")
	}
	return int64(v * float64(mult)), nil
}
