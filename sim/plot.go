package sim

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one line of a plot.
type series struct {
	name string
	x, y []float64
}

// WritePlots writes SVG plots into dir: throughput.svg (tasks finished per
// second over time), queues.svg (queue length per peer over time: every
// peer's line for swarms of up to 200 peers, else p50/p95/max) and
// latency_cdf.svg (the task latency CDF).
func (r *Result) WritePlots(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	var tp series
	tp.name = "tasks/s"
	for i := 1; i < len(r.series); i++ {
		a, b := r.series[i-1], r.series[i]
		if b.t > a.t {
			tp.x = append(tp.x, float64(b.t)/1e9)
			tp.y = append(tp.y, float64(b.completed-a.completed)/(float64(b.t-a.t)/1e9))
		}
	}
	var qs []series
	if len(r.queues) > 0 {
		for p := range r.peerRows {
			s := series{name: r.peerRows[p].name}
			for i, per := range r.queues {
				s.x = append(s.x, float64(r.series[i].t)/1e9)
				s.y = append(s.y, float64(per[p]))
			}
			qs = append(qs, s)
		}
	} else {
		p50, p95, mx := series{name: "p50"}, series{name: "p95"}, series{name: "max"}
		for _, row := range r.series {
			x := float64(row.t) / 1e9
			p50.x, p50.y = append(p50.x, x), append(p50.y, float64(row.queueP50))
			p95.x, p95.y = append(p95.x, x), append(p95.y, float64(row.queueP95))
			mx.x, mx.y = append(mx.x, x), append(mx.y, float64(row.queueMax))
		}
		qs = []series{p50, p95, mx}
	}
	var cdf series
	cdf.name = "latency"
	n := len(r.latencies)
	for k := 1; k <= cdfPoints && n > 0; k++ {
		i := k*n/cdfPoints - 1
		if i < 0 {
			continue
		}
		cdf.x = append(cdf.x, float64(r.latencies[i])/1e6)
		cdf.y = append(cdf.y, float64(i+1)/float64(n))
	}
	return firstErr(
		writePlot(filepath.Join(dir, "throughput.svg"), "Throughput", "virtual time (s)", "tasks finished per second", []series{tp}),
		writePlot(filepath.Join(dir, "queues.svg"), "Queue length per peer", "virtual time (s)", "tasks queued", qs),
		writePlot(filepath.Join(dir, "latency_cdf.svg"), "Task latency CDF", "latency (ms)", "fraction of tasks", []series{cdf}),
	)
}

// writePlot draws line series into an SVG file with gonum/plot.
func writePlot(path, title, xl, yl string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xl
	p.Y.Label.Text = yl
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	legend := len(ss) <= 8
	for i, s := range ss {
		if len(s.x) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s.x))
		for j := range s.x {
			xys[j].X, xys[j].Y = s.x[j], s.y[j]
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("sim: plot %s: %w", filepath.Base(path), err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1)
		p.Add(l)
		if legend && len(ss) > 1 {
			p.Legend.Add(s.name, l)
		}
	}
	p.Legend.Top = true
	if err := p.Save(8*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("sim: plot %s: %w", filepath.Base(path), err)
	}
	return nil
}
