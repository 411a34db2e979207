package deploycheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// The chart rendered with its PrometheusRule and dashboard on (scripts/helm-check.sh sets it).
const renderedEnv = "AUTHZ_CHART_RENDERED"

type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	} `yaml:"spec"`
	Data map[string]string `yaml:"data"`
}

func rendered(t *testing.T) []object {
	t.Helper()
	path := os.Getenv(renderedEnv)
	if path == "" {
		t.Fatalf("%s is not set: run scripts/helm-check.sh, which renders the chart and runs this test", renderedEnv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o object
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		objs = append(objs, o)
	}
	return objs
}

// serviceMetrics are the series the service exports, read from internal/ops/metrics.go;
// histograms export _bucket, _sum and _count.
func serviceMetrics(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../../internal/ops/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	re := regexp.MustCompile(`prometheus\.New(Counter|Gauge|Histogram)(?:Vec)?\(prometheus\.\w+Opts\{\s*Namespace: Namespace, Name: "(\w+)"`)
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		name := "authz_consumer_" + m[2]
		if m[1] == "Histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		} else {
			names[name] = true
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metrics in internal/ops/metrics.go: %v", len(names), names)
	}
	return names
}

// External series the alerts may use besides the service's own.
var external = map[string]bool{"kube_pod_status_ready": true}

// checkExpr parses expr with Prometheus's parser and checks every metric it selects exists.
func checkExpr(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	// The options Prometheus itself starts with: no experimental functions.
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return
	}
	n := 0
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			n++
			if !known[vs.Name] && !external[vs.Name] {
				t.Errorf("%s: %q selects %q, which the service does not export", where, expr, vs.Name)
			}
		}
		return nil
	})
	if n == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
}

// The alerts the runbook (docs/runbook.md) names: every AuthzConsumer*
// alert it mentions.
func documentedAlerts(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var alerts []string
	for _, m := range regexp.MustCompile(`\bAuthzConsumer[A-Z]\w*`).FindAllString(string(doc), -1) {
		if !seen[m] {
			seen[m] = true
			alerts = append(alerts, m)
		}
	}
	sort.Strings(alerts)
	return alerts
}

func TestPrometheusRuleExpressionsParse(t *testing.T) {
	known := serviceMetrics(t)
	var alerts []string
	for _, o := range rendered(t) {
		if o.Kind != "PrometheusRule" {
			continue
		}
		for _, g := range o.Spec.Groups {
			for _, r := range g.Rules {
				alerts = append(alerts, r.Alert)
				checkExpr(t, o.Metadata.Name+"/"+r.Alert, r.Expr, known)
			}
		}
	}
	sort.Strings(alerts)
	if want := documentedAlerts(t); strings.Join(alerts, ",") != strings.Join(want, ",") {
		t.Errorf("PrometheusRule alerts %v, docs/runbook.md names %v", alerts, want)
	}
}

func TestGrafanaDashboard(t *testing.T) {
	known := serviceMetrics(t)
	found := false
	for _, o := range rendered(t) {
		if o.Kind != "ConfigMap" || !strings.HasSuffix(o.Metadata.Name, "-dashboard") {
			continue
		}
		found = true
		for file, body := range o.Data {
			var dash struct {
				UID    string `json:"uid"`
				Title  string `json:"title"`
				Panels []struct {
					Title   string `json:"title"`
					Targets []struct {
						Expr string `json:"expr"`
					} `json:"targets"`
				} `json:"panels"`
			}
			if err := json.Unmarshal([]byte(body), &dash); err != nil {
				t.Fatalf("%s: not JSON: %v", file, err)
			}
			if dash.UID == "" || dash.Title == "" {
				t.Errorf("%s: no uid or title", file)
			}
			var titles []string
			// Grafana's variables, as Grafana substitutes them before the query reaches Prometheus.
			vars := strings.NewReplacer("$__rate_interval", "5m", "$job", "authz-consumer")
			for _, p := range dash.Panels {
				titles = append(titles, p.Title)
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", file, p.Title)
				}
				for _, tg := range p.Targets {
					checkExpr(t, file+"/"+p.Title, vars.Replace(tg.Expr), known)
				}
			}
			all := strings.ToLower(strings.Join(titles, "|"))
			for _, want := range []string{"events by outcome", "runs by type and status", "lag", "parked", "sweep drift"} {
				if !strings.Contains(all, want) {
					t.Errorf("%s: no panel about %q (panels: %v)", file, want, titles)
				}
			}
		}
	}
	if !found {
		t.Fatal("no dashboard ConfigMap in the rendered chart")
	}
}
