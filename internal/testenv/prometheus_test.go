package testenv

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingBinaryFailsWithInstructions(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	done := make(chan *PrometheusServer)
	go func() {
		defer close(done)
		done <- startWith(rec, filepath.Join(t.TempDir(), "no-prometheus"), PrometheusConfig{})
	}()
	if srv := <-done; srv != nil {
		t.Fatalf("startWith a missing binary returned %+v, want a fatal failure", srv)
	}
	if !strings.Contains(rec.msg, "make deps") {
		t.Errorf("failure %q does not say to run `make deps`", rec.msg)
	}
}

func TestPrometheusYAML(t *testing.T) {
	t.Parallel()
	out, err := prometheusYAML(PrometheusConfig{
		Targets: []ScrapeTarget{
			{Addr: "http://127.0.0.1:8080", Labels: map[string]string{"track": "canary"}},
			{Addr: "127.0.0.1:8081", Labels: map[string]string{"track": "stable"}},
		},
		RuleFiles: []string{"prometheus.go"}, // any existing file
	})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Global        map[string]string `yaml:"global"`
		RuleFiles     []string          `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string          `yaml:"targets"`
				Labels  map[string]string `yaml:"labels"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for k, want := range map[string]string{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"} {
		if got.Global[k] != want {
			t.Errorf("global.%s = %q, want %q", k, got.Global[k], want)
		}
	}
	if len(got.RuleFiles) != 1 || !filepath.IsAbs(got.RuleFiles[0]) {
		t.Errorf("rule_files = %q, want one absolute path", got.RuleFiles)
	}
	if len(got.ScrapeConfigs) != 1 || got.ScrapeConfigs[0].JobName != PrometheusJob {
		t.Fatalf("scrape_configs = %+v, want one job %q", got.ScrapeConfigs, PrometheusJob)
	}
	sc := got.ScrapeConfigs[0].StaticConfigs
	if len(sc) != 2 || sc[0].Targets[0] != "127.0.0.1:8080" || sc[0].Labels["track"] != "canary" ||
		sc[1].Targets[0] != "127.0.0.1:8081" || sc[1].Labels["track"] != "stable" {
		t.Errorf("static_configs = %+v", sc)
	}
}

func TestPrometheusYAMLRejectsBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  PrometheusConfig
		want string
	}{
		{"target without port", PrometheusConfig{Targets: []ScrapeTarget{{Addr: "localhost"}}}, "host:port"},
		{"missing rule file", PrometheusConfig{RuleFiles: []string{"testdata/nope.yml"}}, "nope.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := prometheusYAML(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("prometheusYAML = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
