package cuda

import (
	"strings"
	"testing"
)

func TestDriverTable(t *testing.T) {
	for _, c := range []struct {
		driver, cuda string
		compat       bool
		want         DriverOutcome
		reason       string
	}{
		{"535.104.05", "12.2", false, DriverRuns, ">= 535.54.03"},
		{"535.104.05", "12.4", false, DriverMinorCompat, "PTX"},
		{"535.104.05", "12.4.1", false, DriverMinorCompat, "525.60.13"},
		{"470.256.02", "12.2", false, DriverTooOld, "insufficient"},
		{"470.256.02", "12.2", true, DriverForwardCompat, "cuda-compat"},
		{"470.256.02", "11.4", false, DriverRuns, ""},
		{"460.32.03", "11.4", false, DriverMinorCompat, "450.80.02"},
		{"580.65.06", "13.0", false, DriverRuns, ""},
		{"580.159.04", "13.0", false, DriverRuns, ""},
		{"575.51.03", "13.0", false, DriverTooOld, "580.65.06"},
		{"580.159.04", "12.9", false, DriverRuns, ""},
		{"550.54.14", "12.10", false, DriverUnknown, "not in mlenv's driver table"},
		{"550.54.14", "12.7", false, DriverUnknown, "not in"},
		{"garbage", "12.2", false, DriverUnknown, "does not parse"},
		{"535.104.05", "twelve", false, DriverUnknown, "not like 12.4"},
	} {
		v := DriverSupports(c.driver, c.cuda, c.compat)
		if v.Outcome != c.want || !strings.Contains(v.Reason, c.reason) {
			t.Errorf("driver %s, CUDA %s (compat %v): %s %q, want %s with %q", c.driver, c.cuda, c.compat, v.Outcome, v.Reason, c.want, c.reason)
		}
	}
}

// Every entry of the table parses and the minimums rise with the version:
// a typo in the data would show up here.
func TestDriverTableIsOrdered(t *testing.T) {
	prev := []int{0}
	for _, v := range []string{"11.0", "11.1", "11.2", "11.3", "11.4", "11.5", "11.6", "11.7", "11.8", "12.0", "12.1", "12.2", "12.3", "12.4", "12.5", "12.6", "12.8", "12.9", "13.0"} {
		d, err := parseDotted(ToolkitMinDriver[v])
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if compareDotted(d, prev) <= 0 {
			t.Errorf("CUDA %s needs %s, not above the previous entry", v, ToolkitMinDriver[v])
		}
		prev = d
	}
	if len(ToolkitMinDriver) != 19 {
		t.Errorf("%d entries; the list above must name each", len(ToolkitMinDriver))
	}
	for major, floor := range MinorCompatFloor {
		if _, err := parseDotted(floor); err != nil {
			t.Errorf("floor %d: %v", major, err)
		}
	}
}

func FuzzDriverSupports(f *testing.F) {
	f.Add("535.104.05", "12.4", false)
	f.Add("..", "1.", true)
	f.Fuzz(func(t *testing.T, driver, cudaV string, compat bool) {
		v := DriverSupports(driver, cudaV, compat)
		if v.Reason == "" {
			t.Errorf("no reason for %q %q", driver, cudaV)
		}
	})
}
