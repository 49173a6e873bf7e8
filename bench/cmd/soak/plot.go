package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"time"
)

// The plot: three panels over time (RSS, heap in use, goroutines), each on
// its own scale from zero, so that a leak shows as a slope; the counters
// that must stay at zero below them. Drawn with image/png and the 5×7 font
// of font.go.

const (
	plotW      = 1100
	panelH     = 190
	marginL    = 110
	marginR    = 30
	titleH     = 60
	panelGap   = 40
	footerH    = 80
	fontScale  = 2
	charW      = 6 * fontScale
	lineHeight = 9 * fontScale
)

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{30, 30, 30, 255}
	grey  = color.RGBA{215, 215, 215, 255}
	blue  = color.RGBA{31, 119, 180, 255}
	green = color.RGBA{44, 160, 44, 255}
	red   = color.RGBA{214, 39, 40, 255}
)

type series struct {
	name  string
	color color.RGBA
	value func(sample) float64
}

func writePlot(path string, samples []sample, title string) error {
	panels := []series{
		{"RSS (MIB)", blue, func(s sample) float64 { return mib(s.RSS) }},
		{"HEAP IN USE (MIB)", green, func(s sample) float64 { return mib(s.HeapInuse) }},
		{"GOROUTINES", red, func(s sample) float64 { return float64(s.Goroutines) }},
	}
	h := titleH + len(panels)*(panelH+panelGap) + footerH
	img := image.NewRGBA(image.Rect(0, 0, plotW, h))
	fill(img, img.Bounds(), white)
	t1, t2, _ := strings.Cut(title, ", ")
	text(img, 20, 12, t1+",", black)
	text(img, 20, 12+lineHeight+4, t2, black)

	end := samples[len(samples)-1].At
	for i, p := range panels {
		top := titleH + i*(panelH+panelGap)
		drawPanel(img, image.Rect(marginL, top, plotW-marginR, top+panelH), p, samples, end)
	}
	last := samples[len(samples)-1]
	y := h - footerH + 10
	text(img, 20, y, fmt.Sprintf("UNEXPECTED DISCONNECTS: %d   MISSED BROADCASTS: %d   BROADCAST ERRORS: %d",
		last.Unexpected, last.Missed, last.BroadcastErrors), black)
	text(img, 20, y+lineHeight+6, fmt.Sprintf("RECONNECTS: %d (%d FAILED)   SLOW CONSUMERS DROPPED BY THE SERVER: %d OF %d",
		last.Reconnects, last.DialErrors, last.SlowDropped, last.SlowStarted), black)

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func drawPanel(img *image.RGBA, r image.Rectangle, p series, samples []sample, end time.Duration) {
	top := 0.0
	for _, s := range samples {
		top = math.Max(top, p.value(s))
	}
	step := niceStep(top * 1.15 / 4)
	ymax := step * 4
	xOf := func(at time.Duration) int {
		return r.Min.X + int(float64(r.Dx())*at.Seconds()/math.Max(end.Seconds(), 1))
	}
	yOf := func(v float64) int { return r.Max.Y - int(float64(r.Dy())*v/ymax) }

	for k := 0; k <= 4; k++ {
		v := step * float64(k)
		y := yOf(v)
		hline(img, r.Min.X, r.Max.X, y, grey)
		label := fmt.Sprintf("%.0f", v)
		text(img, r.Min.X-8-len(label)*charW, y-3*fontScale, label, black)
	}
	tick := niceMinutes(end)
	for m := time.Duration(0); m <= end; m += tick {
		x := xOf(m)
		vline(img, x, r.Min.Y, r.Max.Y, grey)
		label := fmt.Sprintf("%dM", int(m.Minutes()))
		text(img, x-len(label)*charW/2, r.Max.Y+6, label, black)
	}
	hline(img, r.Min.X, r.Max.X, r.Max.Y, black)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y, black)
	text(img, r.Min.X+10, r.Min.Y+6, p.name, p.color)

	for i := 1; i < len(samples); i++ {
		line(img, xOf(samples[i-1].At), yOf(p.value(samples[i-1])), xOf(samples[i].At), yOf(p.value(samples[i])), p.color)
	}
	for _, s := range samples {
		fill(img, image.Rect(xOf(s.At)-2, yOf(p.value(s))-2, xOf(s.At)+3, yOf(p.value(s))+3), p.color)
	}
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// niceMinutes spaces the time axis's ticks: about ten of them.
func niceMinutes(end time.Duration) time.Duration {
	for _, m := range []int{1, 2, 5, 10, 15, 30, 60} {
		if end <= time.Duration(m*10)*time.Minute {
			return time.Duration(m) * time.Minute
		}
	}
	return 2 * time.Hour
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) { fill(img, image.Rect(x0, y, x1+1, y+1), c) }
func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) { fill(img, image.Rect(x, y0, x+1, y1+1), c) }

// line draws a two-pixel-wide segment (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	err := dx + dy
	for {
		fill(img, image.Rect(x0, y0, x0+2, y0+2), c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// text draws s in the 5×7 font, scaled, with its top-left corner at x, y.
// Characters without a glyph are drawn as spaces.
func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, ch := range strings.ToUpper(s) {
		g := glyphs[ch]
		for row, bits := range g {
			for col, b := range bits {
				if b == '#' {
					fill(img, image.Rect(x+col*fontScale, y+row*fontScale, x+(col+1)*fontScale, y+(row+1)*fontScale), c)
				}
			}
		}
		x += charW
	}
}
