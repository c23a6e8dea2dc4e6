package main

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// printOverload writes the capacity search, the table (Markdown, as
// docs/benchmarks.md shows it) and the choice.
func printOverload(w io.Writer, o options, steps []capacityStep, capacity float64, unloaded time.Duration, cands []*candidate, best *candidate) {
	if o.capacity > 0 {
		fmt.Fprintf(w, "\nC given by -capacity; measured (rate: admitted p99, errors):")
	} else {
		fmt.Fprintf(w, "\ncapacity search (rate: admitted p99, errors):")
	}
	for _, s := range steps {
		fmt.Fprintf(w, " %.0f/s: %s, %.2f %%;", s.rate, s.p99.Round(10*time.Microsecond), 100*s.errs)
	}
	fmt.Fprintf(w, "\nC = %.0f requests/s; unloaded p99 (at the rate nearest 0.3 C) = %s; SLO of goodput = %s\n\n",
		capacity, unloaded.Round(10*time.Microsecond), o.slo)
	fmt.Fprintln(w, "| limiter | load | offered/s | goodput/s | goodput / C | admitted p50 | admitted p99 | p99 / unloaded | rejection p99 | rejected | errors | stack CPU (cores) | waited for CPU: stack, generator (s/s) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range cands {
		for _, lv := range c.levels {
			offered := fmt.Sprintf("%.0f", lv.rate)
			if lv.retries > 0 {
				offered += fmt.Sprintf(" + %.0f retries", float64(lv.retries)/(o.warmup+lv.window).Seconds())
			}
			p99 := percentile(lv.admitted, 99)
			rej := "–"
			if len(lv.rejected) > 0 {
				rej = ms(percentile(lv.rejected, 99))
			}
			fmt.Fprintf(w, "| %s | %.1f C | %s | %.1f | %.0f %% | %s | %s | %.1f× | %s | %.1f %% | %.2f %% | %.2f | %.2f, %.2f |\n",
				c.name, lv.factor, offered, lv.goodput(), 100*lv.goodput()/capacity,
				ms(percentile(lv.admitted, 50)), ms(p99), float64(p99)/float64(unloaded), rej,
				100*float64(len(lv.rejected))/float64(max(1, lv.total)), 100*lv.errorRate(), lv.cpuSecond, lv.stackWait, lv.generatorWait)
		}
	}
	fmt.Fprintln(w)
	if best == nil {
		fmt.Fprintln(w, "choice: no candidate kept admitted p99 within 2× unloaded at 3 C")
		return
	}
	fmt.Fprintf(w, "choice: %s (best goodput at 3 C and 5 C among those keeping admitted p99 within 2× unloaded at 3 C)\n", best.name)
}

// ms formats d in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// plotOverload draws goodput and admitted p99 against offered load, one
// line per candidate without retries, side by side, as SVG.
func plotOverload(path string, capacity float64, cands []*candidate) error {
	good := plot.New()
	good.Title.Text = "Goodput"
	good.X.Label.Text = "offered load (× capacity)"
	good.Y.Label.Text = "successful answers within the SLO per second"
	lat := plot.New()
	lat.Title.Text = "Admitted p99"
	lat.X.Label.Text = "offered load (× capacity)"
	lat.Y.Label.Text = "milliseconds (log scale)"
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	i := 0
	for _, c := range cands {
		if strings.Contains(c.name, "retries") {
			continue
		}
		var g, l plotter.XYs
		for _, lv := range c.levels {
			g = append(g, plotter.XY{X: lv.factor, Y: lv.goodput()})
			l = append(l, plotter.XY{X: lv.factor, Y: max(0.01, float64(percentile(lv.admitted, 99))/float64(time.Millisecond))})
		}
		for _, pl := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{good, g}, {lat, l}} {
			line, points, err := plotter.NewLinePoints(pl.xys)
			if err != nil {
				return err
			}
			line.Color = plotutil.Color(i)
			line.Dashes = plotutil.Dashes(i)
			points.Shape = plotutil.Shape(i)
			points.Color = plotutil.Color(i)
			pl.p.Add(line, points)
			pl.p.Legend.Add(c.name, line, points)
		}
		i++
	}
	capLine := plotter.NewFunction(func(float64) float64 { return capacity })
	capLine.Color = color.Gray{Y: 128}
	capLine.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	good.Add(capLine)
	good.Legend.Add("capacity C", capLine)
	good.Legend.Top = true
	lat.Legend.Top = true

	const width, height = 28 * vg.Centimeter, 11 * vg.Centimeter
	canvas := vgsvg.New(width, height)
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	plots := [][]*plot.Plot{{good, lat}}
	canvases := plot.Align(plots, tiles, dc)
	good.Draw(canvases[0][0])
	lat.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
