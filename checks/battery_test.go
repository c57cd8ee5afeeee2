package checks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/canarybot/canarybot/demo"
)

// lax is a service with none of the battery's protections: every order is
// accepted, no report is rate limited, and tick alignment answers result
// (empty: it truncates, like float64 code would).
type lax struct {
	result string
	orders atomic.Int64
}

func (l *lax) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case OrderPath:
		l.orders.Add(1)
		w.WriteHeader(http.StatusCreated)
	case CSPReportPath:
		w.WriteHeader(http.StatusNoContent)
	case TickAlignPath:
		res := l.result
		if res == "" {
			p := r.URL.Query().Get("price")
			res = p[:strings.Index(p, ".")+3] // truncates 12345.6789 to 12345.67
		}
		json.NewEncoder(w).Encode(map[string]string{"result": res})
	default:
		http.NotFound(w, r)
	}
}

func TestIdempotencyBurst(t *testing.T) {
	t.Parallel()
	t.Run("demo service", func(t *testing.T) {
		t.Parallel()
		r := IdempotencyBurst(context.Background(), BatteryOptions{Base: newDemo(t, demo.TrackCanary).URL})
		if !r.Passed() || r.Counts["201"] != 1 || r.Counts["409"] != 99 || len(r.Counts) != 2 {
			t.Fatalf("%s %v: %s", r.Status, r.Counts, r.Detail)
		}
		if !strings.Contains(r.Evidence, "answers: 1×201, 99×409") || !strings.Contains(r.Evidence, "DRILL-BURST-") {
			t.Errorf("evidence:\n%s", r.Evidence)
		}
	})
	t.Run("no idempotency", func(t *testing.T) {
		t.Parallel()
		l := &lax{}
		r := IdempotencyBurst(context.Background(), BatteryOptions{Base: serve(t, l), BurstRequests: 20})
		if r.Status != StatusFailed || r.Counts["201"] != 20 || !strings.Contains(r.Detail, "does not enforce idempotency") {
			t.Fatalf("%s %v: %s", r.Status, r.Counts, r.Detail)
		}
		if l.orders.Load() != 20 {
			t.Errorf("%d orders sent, want 20", l.orders.Load())
		}
	})
	t.Run("every order refused", func(t *testing.T) {
		t.Parallel()
		url := serve(t, broken{httpStatus: http.StatusConflict})
		// broken answers GETs and POSTs alike.
		r := IdempotencyBurst(context.Background(), BatteryOptions{Base: url, BurstRequests: 5})
		if r.Status != StatusFailed || r.Counts["409"] != 5 || !strings.Contains(r.Detail, "want exactly 1×2xx and 4×409") {
			t.Fatalf("%s %v: %s", r.Status, r.Counts, r.Detail)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		r := IdempotencyBurst(context.Background(), BatteryOptions{Base: refusedURL(t), BurstRequests: 3})
		if r.Status != StatusFailed || r.Counts["transport error"] != 3 || !strings.Contains(r.Detail, "refused") {
			t.Fatalf("%s %v: %s", r.Status, r.Counts, r.Detail)
		}
	})
	t.Run("a new key each run", func(t *testing.T) {
		t.Parallel()
		base := newDemo(t, demo.TrackCanary).URL
		for i := range 2 {
			r := IdempotencyBurst(context.Background(), BatteryOptions{Base: base, BurstRequests: 3})
			if !r.Passed() {
				t.Fatalf("run %d: %s %v: %s", i+1, r.Status, r.Counts, r.Detail)
			}
		}
	})
}

func TestTickAlignment(t *testing.T) {
	t.Parallel()
	fixture := readTickVectors(t, "testdata/tick_vectors.txt")
	base := newDemo(t, demo.TrackCanary).URL
	tests := []struct {
		name    string
		base    string
		vectors []TickVector
		status  Status
		want    []string
	}{
		{"runbook defaults", base, nil, StatusPassed, []string{"2 vectors, zero deviation"}},
		{"fixture", base, fixture, StatusPassed, []string{"5 vectors, zero deviation"}},
		{"wrong expectation", base, []TickVector{{"BTCUSDT", "12345.6789", "0.01", "12345.69"}}, StatusFailed,
			[]string{"= 12345.68, want 12345.69: deviation -0.01"}},
		{"truncating service", serve(t, &lax{}), nil, StatusFailed,
			[]string{"2 of 2 vectors off", "BTCUSDT: 12345.6789 at tick 0.01 = 12345.67, want 12345.68: deviation -0.01"}},
		{"service answers no decimal", serve(t, &lax{result: "NaN"}), nil, StatusFailed, []string{`service answered "NaN" is not a plain decimal`}},
		{"no endpoint", serve(t, broken{httpStatus: http.StatusNotFound}), nil, StatusFailed, []string{"404 Not Found"}},
		{"no vectors", base, []TickVector{}, StatusSkipped, []string{"no tick vectors"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := TickAlignment(context.Background(), BatteryOptions{Base: tt.base, TickVectors: tt.vectors})
			if r.Status != tt.status {
				t.Errorf("status %s, want %s: %s", r.Status, tt.status, r.Detail)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Detail, w) {
					t.Errorf("detail %q lacks %q", r.Detail, w)
				}
			}
		})
	}
}

func readTickVectors(t *testing.T, path string) []TickVector {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []TickVector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := ParseTickVector(line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestParseTickVector(t *testing.T) {
	t.Parallel()
	if v, err := ParseTickVector("BTCTRY:12345.6789:0.1:12345.7"); err != nil || v != (TickVector{"BTCTRY", "12345.6789", "0.1", "12345.7"}) {
		t.Errorf("= %+v, %v", v, err)
	}
	for _, bad := range []string{"BTCUSDT:1:0.01", "BTCUSDT:1:0.01:1:2", "BTCUSDT:1e3:0.01:1000", "BTCUSDT:1:0.01:"} {
		if _, err := ParseTickVector(bad); !errors.Is(err, ErrBadOptions) {
			t.Errorf("ParseTickVector(%q) err = %v, want ErrBadOptions", bad, err)
		}
	}
}

func TestCanonicalDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"12345.70", "12345.7"}, {"012.0", "12"}, {"0.000", "0"}, {"-0.0", "0"}, {"+1.50", "1.5"},
		{"-00.010", "-0.01"}, {"7", "7"},
	}
	for _, tt := range tests {
		if got, err := canonicalDecimal(tt.in); err != nil || got != tt.want {
			t.Errorf("canonicalDecimal(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", ".5", "1.", "1e3", "+-1", "--1", "1.2.3", "NaN", " 1"} {
		if got, err := canonicalDecimal(bad); err == nil {
			t.Errorf("canonicalDecimal(%q) = %q, want an error", bad, got)
		}
	}
	devs := []struct{ got, want, dev string }{
		{"12345.70", "12345.7", "0"}, {"12345.68", "12345.69", "-0.01"}, {"1", "0.999", "0.001"},
	}
	for _, d := range devs {
		if got, err := deviation(d.got, d.want); err != nil || got != d.dev {
			t.Errorf("deviation(%s, %s) = %q, %v; want %s", d.got, d.want, got, err, d.dev)
		}
	}
}

func TestCSPFlood(t *testing.T) {
	t.Parallel()
	t.Run("demo service limits", func(t *testing.T) {
		t.Parallel()
		r := CSPFlood(context.Background(), BatteryOptions{Base: newDemo(t, demo.TrackCanary).URL})
		if !r.Passed() || r.Counts["429"] == 0 || r.Counts["204"]+r.Counts["429"] != 50 {
			t.Fatalf("%s %v: %s", r.Status, r.Counts, r.Detail)
		}
	})
	t.Run("no rate limit", func(t *testing.T) {
		t.Parallel()
		r := CSPFlood(context.Background(), BatteryOptions{Base: serve(t, &lax{})})
		if r.Status != StatusFailed || r.Counts["204"] != 50 || !strings.Contains(r.Detail, "has no rate limit") {
			t.Fatalf("%s %v: %s", r.Status, r.Counts, r.Detail)
		}
	})
	t.Run("429 among errors", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int64
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%2 == 0 {
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.WriteHeader(http.StatusInternalServerError)
		})
		r := CSPFlood(context.Background(), BatteryOptions{Base: serve(t, h), FloodRequests: 10})
		if r.Status != StatusFailed || !strings.Contains(r.Detail, "5 answers neither accepted nor 429") {
			t.Fatalf("%s %v: %s", r.Status, r.Counts, r.Detail)
		}
	})
}

func TestSBOMDrift(t *testing.T) {
	t.Parallel()
	withSBOM := t.TempDir()
	data, err := os.ReadFile("testdata/sbom_v1.4.0.json")
	if err != nil {
		t.Fatal(err)
	}
	write := func(dir, name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write(withSBOM, "sbom_v1.4.0.json", string(data))
	cdx := func(components string) string {
		return `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[` + components + `]}`
	}
	const leftPad = `{"name":"left-pad","purl":"pkg:npm/left-pad@1.0.0","licenses":[{"license":{"id":"MIT"}}]}`
	const readline = `{"name":"readline","bom-ref":"rl","version":"8.0.0","purl":"pkg:npm/readline@8.0.0","licenses":[{"license":{"id":"GPL-3.0-only"}}]}`
	prevDir := t.TempDir()
	prevClean := write(prevDir, "clean.json", cdx(leftPad))
	prevGPL := write(prevDir, "gpl.json", cdx(leftPad+","+readline))
	garbage := write(prevDir, "garbage.json", "not json")
	newGPL := t.TempDir()
	write(newGPL, "sbom_v1.5.0.json", cdx(leftPad+","+readline))
	noLicenses := t.TempDir()
	write(noLicenses, "sbom_v1.5.0.json", cdx(`{"name":"left-pad"},{"name":"readline"}`))

	tests := []struct {
		dir, version, previous string
		want                   Status
		detail, evidence       string
	}{
		{withSBOM, "v1.4.0", "", StatusSkipped, "no previous SBOM to compare it with (pass --previous-sbom)", ""},
		{withSBOM, "v1.5.0", prevClean, StatusSkipped, "no SBOM", ""},
		{t.TempDir(), "v1.4.0", prevClean, StatusSkipped, "the green button writes it", ""},
		{"", "v1.4.0", prevClean, StatusSkipped, "no evidence directory", ""},
		{withSBOM, "v1.4.0", garbage, StatusFailed, "previous SBOM unreadable: bad SBOM", ""},
		{withSBOM, "v1.4.0", filepath.Join(prevDir, "missing.json"), StatusFailed, "previous SBOM unreadable: bad SBOM", ""},
		{withSBOM, "v1.4.0", prevClean, StatusPassed, "PASS (1 of 1 packages licensed)", "license coverage: 1 of 1"},
		{newGPL, "v1.5.0", prevClean, StatusFailed, "FAIL: 1 new copyleft license(s)", "pkg:npm/readline 8.0.0: GPL-3.0-only (GPL) in " + filepath.Join(newGPL, "sbom_v1.5.0.json") + "#rl"},
		{newGPL, "v1.5.0", prevGPL, StatusPassed, "PASS", "already present in the previous release (passes) (1):"},
		{noLicenses, "v1.5.0", prevClean, StatusFailed, "has 2 packages and no licenses: nothing was checked", "license coverage: 0 of 2"},
	}
	for _, tt := range tests {
		r := SBOMDrift(context.Background(), BatteryOptions{EvidenceDir: tt.dir, Version: tt.version, PreviousSBOM: tt.previous})
		if r.Status != tt.want || !strings.Contains(r.Detail, tt.detail) || !strings.Contains(r.Evidence, tt.evidence) {
			t.Errorf("%s %s against %q: %s %q, want %s saying %q\n%s", tt.dir, tt.version, tt.previous, r.Status, r.Detail, tt.want, tt.detail, r.Evidence)
		}
	}
}

func TestBattery(t *testing.T) {
	t.Parallel()
	t.Run("demo service", func(t *testing.T) {
		t.Parallel()
		res, err := Battery(context.Background(), BatteryOptions{Base: newDemo(t, demo.TrackCanary).URL, Version: "v1.4.0", EvidenceDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		text := string(res.Text())
		if !res.Passed() || len(res.Tests) != 5 {
			t.Fatalf("battery failed %v:\n%s", res.Failed(), text)
		}
		if got := strings.Join(res.Skipped(), ","); got != NameOutboxLag+","+NameSBOMDrift {
			t.Errorf("skipped %s, want the outbox and SBOM tests", got)
		}
		for _, want := range []string{"verdict: PASS; 2 not run: outbox_lag, sbom_license_drift", "## idempotency_burst: passed", "## csp_flood: passed", "BTCTRY: 12345.6789 at tick 0.1 = 12345.7 ✅"} {
			if !strings.Contains(text, want) {
				t.Errorf("battery text lacks %q:\n%s", want, text)
			}
		}
	})
	t.Run("lax service", func(t *testing.T) {
		t.Parallel()
		res, err := Battery(context.Background(), BatteryOptions{Base: serve(t, &lax{}), Version: "v1.4.0", BurstRequests: 10, FloodRequests: 10})
		if err != nil {
			t.Fatal(err)
		}
		if res.Passed() || strings.Join(res.Failed(), ",") != "idempotency_burst,decimal_tick_alignment,csp_flood" {
			t.Fatalf("failed %v, want the burst, the ticks and the flood:\n%s", res.Failed(), res.Text())
		}
		if v := res.Verdict(); !strings.HasPrefix(v, "FAIL (3 failed: ") {
			t.Errorf("verdict %q", v)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		t.Parallel()
		for _, o := range []BatteryOptions{{}, {Base: "localhost:4001"}, {Base: "http://127.0.0.1", BurstRequests: 1}, {Base: "http://127.0.0.1", Parallel: -1}} {
			if _, err := Battery(context.Background(), o); !errors.Is(err, ErrBadOptions) {
				t.Errorf("%+v: err = %v, want ErrBadOptions", o, err)
			}
		}
	})
}
