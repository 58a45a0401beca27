package plot

import (
	"bytes"
	"strings"
	"testing"
)

func TestChartIsDeterministicAndLabelled(t *testing.T) {
	c := Chart{Title: "throughput vs n", XLabel: "n", YLabel: "req/s", LogX: true, XTicks: []float64{4, 16, 32},
		Series: []Series{{Name: "PBFT", X: []float64{4, 16, 32}, Y: []float64{9000, 7000, 4000}}, {Name: "RCC <m=n>", X: []float64{4, 16, 32}, Y: []float64{12000, 20000, 15000}}}}
	var a, b bytes.Buffer
	if err := c.SVG(&a); err != nil {
		t.Fatal(err)
	}
	if err := c.SVG(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same chart drew different bytes")
	}
	out := a.String()
	for _, want := range []string{"<svg", "throughput vs n", "PBFT", "RCC &lt;m=n&gt;", ">20k<", ">16<", "polyline"} {
		if !strings.Contains(out, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if strings.Count(out, "<polyline") != 2 {
		t.Errorf("want one line per series")
	}
}

func TestChartRejectsWhatItCannotDraw(t *testing.T) {
	for name, c := range map[string]Chart{
		"empty":      {Title: "x"},
		"mismatched": {Series: []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1}}}},
		"log of 0":   {LogX: true, Series: []Series{{Name: "a", X: []float64{0}, Y: []float64{1}}}},
	} {
		if err := c.SVG(new(bytes.Buffer)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
