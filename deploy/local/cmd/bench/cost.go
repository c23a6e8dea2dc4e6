package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The cost of a saga (-cost) is read from three places at both ends of the
// window and divided by the sagas completed in it:
//
//   - CPU time per process, from /proc (sampleCPU), as without -cost;
//   - the services' own counters, from their /metrics: messages the outbox
//     relays published and the consumers handled;
//   - in -mode full, PostgreSQL's: transactions per database from
//     pg_stat_database, statements from pg_stat_statements, which the
//     launcher preloads when bench asks (-postgres-setting).
//
// Everything the stack does in the window counts, background work (relay
// polling, gauges, pruning) included: that is what a saga costs when the
// stack runs at this load. The work of sagas that straddle the window's
// edges is counted in part; at a steady load that evens out.

// pgStatStatements is the setting the launcher passes to the cluster so that
// pg_stat_statements can count statements.
const pgStatStatements = "shared_preload_libraries=pg_stat_statements"

// service is a process of the stack whose /metrics bench reads.
type service struct {
	name       string
	offset     int  // its port relative to -port-base
	replicated bool // the launcher's -replicas applies
}

// services are the launcher's services and their ports (see the launcher's
// -port-base).
var services = []service{{"gateway", 0, false}, {"order", 1, true}, {"inventory", 2, true}, {"payment", 3, true}, {"psp", pspOffset, false}}

// ports returns the ports of the service's replicas.
func (s service) ports(portBase, replicas int) []int {
	if !s.replicated {
		replicas = 1
	}
	var ports []int
	for r := range replicas {
		ports = append(ports, portBase+s.offset+replicaPortStep*r)
	}
	return ports
}

// countedFamilies are the counters read from each service's /metrics, by
// family name, with the label that splits them in the report ("" for none).
var countedFamilies = map[string]string{
	"outbox_published_total":        "",
	"outbox_publish_failures_total": "",
	"messaging_consumed_total":      "topic",
	"messaging_dead_lettered_total": "topic",
}

// counters are the values of countedFamilies in one service: family name,
// then label value ("" when not split), summed over the other labels.
type counters map[string]map[string]float64

// scrapeCounters reads countedFamilies from the /metrics of every service
// of the stack at host:port-base, the replicas of a service summed. A
// service with a replica that does not answer 200 is left out; one that
// answers with text that does not parse is an error.
func scrapeCounters(ctx context.Context, client *http.Client, portBase, replicas int) (map[string]counters, error) {
	all := map[string]counters{}
services:
	for _, s := range services {
		sum := counters{}
		for _, port := range s.ports(portBase, replicas) {
			c, ok, err := scrapeOne(ctx, client, port)
			if err != nil {
				return nil, fmt.Errorf("metrics of %s: %w", s.name, err)
			}
			if !ok {
				continue services // a dead service shows in the outcome; one without /metrics is not counted
			}
			sum.add(c)
		}
		all[s.name] = sum
	}
	return all, nil
}

// scrapeOne reads countedFamilies from the /metrics at port; ok is false
// when it does not answer 200.
func scrapeOne(ctx context.Context, client *http.Client, port int) (c counters, ok bool, err error) {
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, nil
	}
	c, err = parseCounters(resp.Body)
	return c, err == nil, err
}

// add adds other's values to c's.
func (c counters) add(other counters) {
	for family, values := range other {
		if c[family] == nil {
			c[family] = map[string]float64{}
		}
		for label, v := range values {
			c[family][label] += v
		}
	}
}

// parseCounters reads countedFamilies from Prometheus's text format.
func parseCounters(r io.Reader) (counters, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	c := counters{}
	for name, split := range countedFamilies {
		f, ok := families[name]
		if !ok {
			continue
		}
		c[name] = map[string]float64{}
		for _, m := range f.GetMetric() {
			c[name][labelValue(m, split)] += m.GetCounter().GetValue()
		}
	}
	return c, nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// minus returns c − before, per family and label value.
func (c counters) minus(before counters) counters {
	d := counters{}
	for name, byLabel := range c {
		d[name] = map[string]float64{}
		for label, v := range byLabel {
			d[name][label] = v - before[name][label]
		}
	}
	return d
}

// total returns the sum of family name over its label values.
func (c counters) total(name string) float64 {
	t := 0.0
	for _, v := range c[name] {
		t += v
	}
	return t
}

// postgres reads PostgreSQL's statistics of the stack's cluster.
type postgres struct {
	conn *pgx.Conn // to the database "postgres", which no service uses
}

// connectPostgres connects to the cluster at 127.0.0.1:port as the
// launcher's superuser and creates the pg_stat_statements extension, which
// needs the library preloaded (pgStatStatements).
func connectPostgres(ctx context.Context, port int) (*postgres, error) {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port))
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("create extension pg_stat_statements: %w", err)
	}
	return &postgres{conn: conn}, nil
}

func (p *postgres) close(ctx context.Context) error { return p.conn.Close(ctx) }

// xacts are the transactions each database committed and rolled back.
type xacts map[string]struct{ commits, rollbacks int64 }

// start resets pg_stat_statements and returns the transaction counters: the
// window's beginning.
func (p *postgres) start(ctx context.Context) (xacts, error) {
	if _, err := p.conn.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		return nil, fmt.Errorf("reset pg_stat_statements: %w", err)
	}
	return p.xacts(ctx)
}

// xacts reads pg_stat_database. A backend reports its counters there when a
// transaction ends, at most once a second (PostgreSQL 15): the figures lag
// the window's edges by up to that.
func (p *postgres) xacts(ctx context.Context) (xacts, error) {
	rows, err := p.conn.Query(ctx, `SELECT datname, xact_commit, xact_rollback FROM pg_stat_database
WHERE datname IS NOT NULL AND datname NOT IN ('postgres', 'template0', 'template1')`)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_database: %w", err)
	}
	x := xacts{}
	var name string
	var commits, rollbacks int64
	_, err = pgx.ForEachRow(rows, []any{&name, &commits, &rollbacks}, func() error {
		x[name] = struct{ commits, rollbacks int64 }{commits, rollbacks}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_database: %w", err)
	}
	return x, nil
}

// statement is one normalised statement of pg_stat_statements.
type statement struct {
	database string
	query    string
	calls    int64
	execMS   float64 // total execution time
	rows     int64
}

// statements reads pg_stat_statements of every database but "postgres"
// (bench's own): what the services ran since start.
func (p *postgres) statements(ctx context.Context) ([]statement, error) {
	rows, err := p.conn.Query(ctx, `SELECT d.datname, s.query, s.calls, s.total_exec_time, s.rows
FROM pg_stat_statements AS s JOIN pg_database AS d ON d.oid = s.dbid
WHERE d.datname NOT IN ('postgres', 'template0', 'template1')`)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	var all []statement
	var s statement
	_, err = pgx.ForEachRow(rows, []any{&s.database, &s.query, &s.calls, &s.execMS, &s.rows}, func() error {
		all = append(all, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	return all, nil
}

// statementKinds are the columns of the statements table, in order.
var statementKinds = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN/COMMIT", "other"}

// kind classifies a statement by its first word, or for a WITH by the
// first statement word after its common table expressions; BEGIN/COMMIT
// stands for every transaction control statement.
func kind(query string) string {
	words := topLevelWords(query)
	if len(words) > 0 && strings.EqualFold(words[0], "WITH") {
		for _, w := range words[1:] {
			switch w := strings.ToUpper(w); w {
			case "SELECT", "INSERT", "UPDATE", "DELETE":
				return w
			}
		}
		return "other"
	}
	if len(words) == 0 {
		return "other"
	}
	switch w := strings.ToUpper(words[0]); w {
	case "SELECT", "INSERT", "UPDATE", "DELETE":
		return w
	case "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE":
		return "BEGIN/COMMIT"
	default:
		return "other"
	}
}

// topLevelWords returns the words of query outside parentheses.
func topLevelWords(query string) []string {
	var b strings.Builder
	depth := 0
	for _, r := range query {
		switch {
		case r == '(':
			depth++
			b.WriteByte(' ')
		case r == ')':
			depth = max(0, depth-1)
			b.WriteByte(' ')
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return strings.Fields(b.String())
}

// cost is what the stack did over the window, to be divided by the sagas
// completed in it.
type cost struct {
	sagas     int                 // completed in the window
	window    time.Duration       // its length
	cpu       []cpuShare          // CPU seconds per program
	counters  map[string]counters // per service, the window's deltas
	unscraped []string            // services whose /metrics did not answer 200 at both ends
	xacts     xacts               // per database, the window's deltas; nil without PostgreSQL
	stmts     []statement         // the window's; nil without PostgreSQL
	topN      int                 // statements listed
}

func (c *cost) print(w io.Writer) {
	if c.sagas == 0 {
		fmt.Fprintln(w, "cost per saga: no saga completed in the window")
		return
	}
	n := float64(c.sagas)
	fmt.Fprintf(w, "cost per completed saga (%d sagas in the %s window; everything the stack did in it, background work included):\n", c.sagas, c.window)

	var parts []string
	total := 0.0
	for _, share := range c.cpu { // largest first
		total += share.seconds
		parts = append(parts, fmt.Sprintf("%s %.0f", share.name, share.seconds/n*1e6))
	}
	fmt.Fprintf(w, "  CPU µs: %s; total %.0f\n", strings.Join(parts, ", "), total/n*1e6)

	var produced, consumed []string
	var totalProduced, totalConsumed float64
	for _, s := range services {
		sc, ok := c.counters[s.name]
		if !ok {
			continue
		}
		if _, ok := sc["outbox_published_total"]; ok {
			p := sc.total("outbox_published_total")
			totalProduced += p
			produced = append(produced, fmt.Sprintf("%s %.2f", s.name, p/n))
		}
		if byTopic, ok := sc["messaging_consumed_total"]; ok {
			cons := sc.total("messaging_consumed_total")
			totalConsumed += cons
			var topics []string
			for _, t := range slices.Sorted(maps.Keys(byTopic)) {
				topics = append(topics, fmt.Sprintf("%s %.2f", t, byTopic[t]/n))
			}
			consumed = append(consumed, fmt.Sprintf("%s %.2f (%s)", s.name, cons/n, strings.Join(topics, ", ")))
		}
	}
	fmt.Fprintf(w, "  Kafka messages produced by the outbox relays (outbox_published_total): %s; total %.2f\n", strings.Join(produced, ", "), totalProduced/n)
	fmt.Fprintf(w, "  Kafka messages consumed and committed (messaging_consumed_total): %s; total %.2f\n", strings.Join(consumed, ", "), totalConsumed/n)
	var failed []string
	for _, s := range services {
		for _, fam := range []string{"outbox_publish_failures_total", "messaging_dead_lettered_total"} {
			if v := c.counters[s.name].total(fam); v != 0 {
				failed = append(failed, fmt.Sprintf("%s %s %.0f", s.name, fam, v))
			}
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "  failures in the window: %s\n", strings.Join(failed, ", "))
	}
	if len(c.unscraped) > 0 {
		fmt.Fprintf(w, "  not counted (no /metrics at both ends of the window): %s\n", strings.Join(c.unscraped, ", "))
	}

	if c.xacts == nil {
		return
	}
	byDB := map[string]map[string]int64{}
	for _, s := range c.stmts {
		if byDB[s.database] == nil {
			byDB[s.database] = map[string]int64{}
		}
		byDB[s.database][kind(s.query)] += s.calls
	}
	dbs := slices.Sorted(maps.Keys(c.xacts))
	fmt.Fprintf(w, "  SQL (pg_stat_database, pg_stat_statements), per saga:\n")
	fmt.Fprintf(w, "    %-12s %9s %9s %11s", "database", "commits", "rollbacks", "statements")
	for _, k := range statementKinds {
		fmt.Fprintf(w, " %12s", k)
	}
	fmt.Fprintln(w)
	var sumX, sumR float64
	sumK := map[string]int64{}
	for _, db := range dbs {
		x := c.xacts[db]
		sumX += float64(x.commits)
		sumR += float64(x.rollbacks)
		var all int64
		for _, v := range byDB[db] {
			all += v
		}
		fmt.Fprintf(w, "    %-12s %9.2f %9.2f %11.2f", db, float64(x.commits)/n, float64(x.rollbacks)/n, float64(all)/n)
		for _, k := range statementKinds {
			sumK[k] += byDB[db][k]
			fmt.Fprintf(w, " %12.2f", float64(byDB[db][k])/n)
		}
		fmt.Fprintln(w)
	}
	var all int64
	for _, v := range sumK {
		all += v
	}
	fmt.Fprintf(w, "    %-12s %9.2f %9.2f %11.2f", "total", sumX/n, sumR/n, float64(all)/n)
	for _, k := range statementKinds {
		fmt.Fprintf(w, " %12.2f", float64(sumK[k])/n)
	}
	fmt.Fprintln(w)

	c.printTop(w, "calls", func(s statement) float64 { return float64(s.calls) })
	c.printTop(w, "execution time", func(s statement) float64 { return s.execMS })
}

// printTop lists the topN statements with the largest by(statement).
func (c *cost) printTop(w io.Writer, what string, by func(statement) float64) {
	n := float64(c.sagas)
	top := slices.Clone(c.stmts)
	slices.SortFunc(top, func(a, b statement) int {
		if by(a) != by(b) {
			if by(a) > by(b) {
				return -1
			}
			return 1
		}
		return strings.Compare(a.database+a.query, b.database+b.query)
	})
	if len(top) > c.topN {
		top = top[:c.topN]
	}
	fmt.Fprintf(w, "  top %d statements by %s, per saga: calls, execution ms, rows, database, statement\n", len(top), what)
	for _, s := range top {
		fmt.Fprintf(w, "    %6.2f %7.3f %7.2f  %-11s %s\n", float64(s.calls)/n, s.execMS/n, float64(s.rows)/n, s.database, oneLine(s.query, 140))
	}
}

// oneLine collapses the white space of s and cuts it to at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}

// sample is what bench reads at each end of the window.
type sample struct {
	cpu      cpuSnapshot
	counters map[string]counters // -cost
	xacts    xacts               // -cost in -mode full
	stmts    []statement         // -cost in -mode full, at the end
}

// metricsClient reads the services' /metrics.
var metricsClient = &http.Client{Timeout: 5 * time.Second}

// takeSample reads the CPU times and, with -cost, the services' counters
// and PostgreSQL's statistics (pg, if not nil). At the window's start it
// resets pg_stat_statements; at its end it reads them.
func takeSample(ctx context.Context, o options, launcherPID int, pg *postgres, start bool) (sample, error) {
	s := sample{cpu: sampleCPU(launcherPID, o.dir)}
	if !o.cost {
		return s, nil
	}
	var err error
	if s.counters, err = scrapeCounters(ctx, metricsClient, o.portBase, o.replicas); err != nil {
		return s, err
	}
	if pg == nil {
		return s, nil
	}
	if start {
		s.xacts, err = pg.start(ctx)
		return s, err
	}
	if s.xacts, err = pg.xacts(ctx); err != nil {
		return s, err
	}
	s.stmts, err = pg.statements(ctx)
	return s, err
}

// minus returns the cost of the window from its start to s, in which sagas
// completed.
func (s sample) minus(start sample, sagas int, o options) *cost {
	c := &cost{sagas: sagas, window: o.duration, cpu: s.cpu.since(start.cpu), counters: map[string]counters{}, topN: o.top}
	for _, svc := range services {
		end, okEnd := s.counters[svc.name]
		begin, okBegin := start.counters[svc.name]
		if !okEnd || !okBegin {
			c.unscraped = append(c.unscraped, svc.name)
			continue
		}
		c.counters[svc.name] = end.minus(begin)
	}
	if s.xacts != nil {
		c.xacts = xacts{}
		for db, x := range s.xacts {
			b := start.xacts[db]
			c.xacts[db] = struct{ commits, rollbacks int64 }{x.commits - b.commits, x.rollbacks - b.rollbacks}
		}
		c.stmts = s.stmts
	}
	return c
}
