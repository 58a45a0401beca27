package calibrate

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/braid-bft/braid/sim"
)

// Every figure is measured (none left at zero, which the simulator would
// read as "use the built-in figure"), and the file round-trips.
func TestMeasureFillsTheModel(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a few seconds")
	}
	dir := t.TempDir()
	m, err := Measure(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]int64{"verify": int64(m.Verification), "batch16": int64(m.Batch16), "batch64": int64(m.Batch64),
		"batch256": int64(m.Batch256), "sign": int64(m.Sign), "per byte": int64(m.PerByte), "message": int64(m.Message),
		"record": int64(m.Record), "record byte": int64(m.RecordByte), "fsync": int64(m.Fsync)} {
		if d <= 0 {
			t.Errorf("%s: %d ns, want > 0", name, d)
		}
	}
	if m.Cores < 1 || m.Source == "" {
		t.Errorf("cores %d, source %q", m.Cores, m.Source)
	}
	p := filepath.Join(dir, "costs.json")
	if err := Write(p, m); err != nil {
		t.Fatal(err)
	}
	back, err := sim.LoadMachine(p)
	if err != nil || back != m {
		t.Fatalf("read back %+v, %v; want %+v", back, err, m)
	}
}
