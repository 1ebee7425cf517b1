package testcalls

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// grafanaDashboard is the dashboard shipped in the repository.
var grafanaDashboard = filepath.Join("..", "config", "grafana", "parley.json")

// expectedLater are metrics the dashboard shows that a running parley
// does not serve yet: the rooms of issue 14 (a gauge of rooms by mode,
// and one of members by room). The test takes them as they come.
var expectedLater = []string{"parley_rooms", "parley_room_members"}

// hepPortUnused is a HEP collector port nobody listens on.
const hepPortUnused = 32212

// metricName matches the metric names of PromQL expressions: parley's
// own and the Go and process collectors'.
var metricName = regexp.MustCompile(`\b(?:parley|process|go)_[a-z0-9_]+\b`)

// dashboardExprs returns every query of the dashboard: each panel's
// targets (rows included) and each template variable's query.
func dashboardExprs(t *testing.T) (exprs []string, panels int) {
	t.Helper()
	data, err := os.ReadFile(grafanaDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
			Panels []json.RawMessage `json:"panels"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s is not a dashboard: %v", grafanaDashboard, err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Errorf("the dashboard has no title or uid")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			if len(p.Panels) > 0 {
				t.Errorf("row %q holds collapsed panels; keep them at the top level so this test reads them", p.Title)
			}
			continue
		}
		panels++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced expression %s", p.Title, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	return exprs, panels
}

// TestGrafanaDashboardMetrics: every metric the Grafana dashboard queries
// is one a running parley serves on /metrics, after a registration and a
// call (so the series that appear with the first request exist), except
// those listed in expectedLater.
func TestGrafanaDashboardMetrics(t *testing.T) {
	exprs, panels := dashboardExprs(t)
	used := map[string]bool{}
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			used[m] = true
		}
	}
	if panels < 10 || len(used) < 15 {
		t.Fatalf("the dashboard has %d panels over %d metrics; it looks truncated", panels, len(used))
	}
	for _, want := range []string{"parley_calls", "parley_call_setup_seconds_bucket", "parley_registrations",
		"parley_sip_responses_total", "parley_rtp_packets_lost_total", "parley_rtp_jitter_seconds_bucket",
		"parley_rtp_ports_in_use", "parley_transfers_total", "parley_dtmf_total", "parley_rooms", "parley_room_members"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}

	// HEP capture on (to a port nobody listens on: the messages count as
	// failed), so its counters are served.
	pl := startParley(t, parleyConfig{Extra: hepYAML(hepPortUnused)})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	// A wrong password first: the failed authentications are counted by
	// method from the first one.
	if r, err := alice.register("wrong", "MD5", 60); err != nil || r.Final == nil || r.Final.StatusCode == 200 {
		t.Fatalf("REGISTER with a wrong password: %+v, %v", r, err)
	}
	alice.mustRegister()
	served := map[string]bool{}
	for series := range pl.scrapeMetrics(t) {
		name, _, _ := strings.Cut(series, "{")
		served[name] = true
	}
	var missing []string
	for m := range used {
		switch {
		case served[m]:
			if slices.Contains(expectedLater, m) {
				t.Logf("%s is served now: take it off expectedLater", m)
			}
		case slices.Contains(expectedLater, m):
			t.Logf("%s is not served yet (expected later)", m)
		default:
			missing = append(missing, m)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("%s queries metrics parley does not serve: %s\nserved: %s", grafanaDashboard, strings.Join(missing, ", "), pl.scrapeMetrics(t).names())
	}
}

// prometheusPort is where TestGrafanaDashboardQueries runs Prometheus.
const prometheusPort = 32220

// TestGrafanaDashboardQueries runs every query of the dashboard in a real
// Prometheus (Debian's) scraping a running parley after a registration
// and a call: each must parse and, unless it is about a metric expected
// later, return a series.
func TestGrafanaDashboardQueries(t *testing.T) {
	exprs, _ := dashboardExprs(t)
	promBin := needPackage(t, "prometheus", "prometheus")
	pl := startParley(t, parleyConfig{Extra: hepYAML(hepPortUnused)})

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfg, fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"+
		"scrape_configs:\n  - job_name: parley\n    static_configs: [{targets: ['%s']}]\n", pl.AdminAddr))
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", prometheusPort)
	cmd := exec.Command(promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", prometheusPort))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", tail(logPath, 30))
		}
	})

	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	if _, err := alice.register("wrong", "MD5", 60); err != nil {
		t.Fatal(err)
	}
	alice.mustRegister()
	bob.mustRegister()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := alice.call(ctx, "1002")
	c.mustAnswered(t)
	bob.mustEvent(evInvite)
	c.hangup(t)

	query := func(q string) (status string, n int, errText string) {
		res, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return "", 0, err.Error()
		}
		defer res.Body.Close()
		var out struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			return "", 0, err.Error()
		}
		return out.Status, len(out.Data.Result), out.Error
	}
	// Wait for a few scrapes after the call: rate() needs two samples.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, n, _ := query(`count_over_time(parley_sip_responses_total{code="200",method="BYE"}[1m])`)
		if n > 0 {
			if _, n3, _ := query(`count_over_time(parley_sip_responses_total{code="200",method="BYE"}[1m]) >= 3`); n3 > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape parley's call within 30s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, e := range exprs {
		q := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*").Replace(e)
		if strings.HasPrefix(q, "label_values(") {
			// A template query: Grafana asks for the label's values.
			metric, _, _ := strings.Cut(strings.TrimPrefix(q, "label_values("), ",")
			q = "count by (instance) (" + strings.TrimSpace(metric) + ")"
		}
		status, n, errText := query(q)
		later := false
		for _, m := range metricName.FindAllString(q, -1) {
			later = later || slices.Contains(expectedLater, m)
		}
		switch {
		case status != "success":
			t.Errorf("Prometheus refused %s: %s", q, errText)
		case n == 0 && !later:
			t.Errorf("no series for %s", q)
		}
	}
}
