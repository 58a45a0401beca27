package enum

import "testing"

type color uint8

var colorNames = []string{0: "red", 2: "blue"}

func TestName(t *testing.T) {
	for v, want := range map[color]string{0: "red", 1: "color(1)", 2: "blue", 3: "color(3)", 255: "color(255)"} {
		if got := Name(colorNames, v, "color"); got != want {
			t.Errorf("Name(%d) = %q, want %q", v, got, want)
		}
	}
}
