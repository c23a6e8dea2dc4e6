package loadtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evanw/esbuild/pkg/api"
	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/servicetest"
)

// scripts returns the k6 scripts' paths, lib.js aside.
func scripts(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("k6/*.js")
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(paths, func(p string) bool { return filepath.Base(p) == "lib.js" })
}

// TestK6ScriptsParse parses every k6 script with esbuild, its local imports
// resolved and k6's own modules left external: a syntax error or a missing
// import fails here, without k6 (which CI does not run: AGPL).
func TestK6ScriptsParse(t *testing.T) {
	for _, path := range append(scripts(t), "k6/lib.js") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			res := api.Build(api.BuildOptions{
				EntryPoints: []string{path}, Bundle: true, Write: false,
				Format: api.FormatESModule, Platform: api.PlatformNeutral, Target: api.ES2020,
				External: []string{"k6", "k6/*"}, LogLevel: api.LogLevelSilent,
			})
			for _, m := range res.Errors {
				t.Errorf("%s: %s", location(m), m.Text)
			}
		})
	}
}

func location(m api.Message) string {
	if m.Location == nil {
		return "?"
	}
	return fmt.Sprintf("%s:%d:%d", m.Location.File, m.Location.Line, m.Location.Column)
}

// k6Stubs resolves k6's modules to stand-ins with the names the scripts
// import, enough to run their init context (which builds options).
var k6Stubs = api.Plugin{Name: "k6-stubs", Setup: func(b api.PluginBuild) {
	b.OnResolve(api.OnResolveOptions{Filter: `^k6(/.*)?$`}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
		return api.OnResolveResult{Path: a.Path, Namespace: "k6-stub"}, nil
	})
	stub := `const any = new Proxy(function () {}, { get: () => any, apply: () => any });
export default any;
export const check = any, sleep = any, group = any;
export class Rate { add() {} }
export class Trend { add() {} }
export class Counter { add() {} }`
	b.OnLoad(api.OnLoadOptions{Filter: `.*`, Namespace: "k6-stub"}, func(api.OnLoadArgs) (api.OnLoadResult, error) {
		return api.OnLoadResult{Contents: &stub, Loader: api.LoaderJS}, nil
	})
}}

// evalOptions bundles script with esbuild (k6's modules stubbed) and runs
// its init context in Node with k6's open() and __ENV, returning its
// exported options as JSON.
func evalOptions(t *testing.T, node, script string, env map[string]string) map[string]any {
	t.Helper()
	res := api.Build(api.BuildOptions{
		EntryPoints: []string{script}, Bundle: true, Write: false,
		Format: api.FormatCommonJS, Platform: api.PlatformNeutral, Target: api.ES2020,
		Plugins: []api.Plugin{k6Stubs}, LogLevel: api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		t.Fatalf("bundle %s: %s: %s", script, location(res.Errors[0]), res.Errors[0].Text)
	}
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.js")
	if err := os.WriteFile(bundle, res.OutputFiles[0].Contents, 0o644); err != nil {
		t.Fatal(err)
	}
	scriptDir, err := filepath.Abs(filepath.Dir(script))
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := json.Marshal(env)
	main := `const fs = require('fs'), path = require('path');
globalThis.__ENV = ` + string(envJSON) + `;
globalThis.open = (p) => fs.readFileSync(path.resolve(` + strconv.Quote(scriptDir) + `, p), 'utf8');
const m = require(` + strconv.Quote(bundle) + `);
process.stdout.write(JSON.stringify({options: m.options, setup: typeof m.setup, default: typeof m.default}));`
	out, err := exec.Command(node, "-e", main).CombinedOutput()
	if err != nil {
		t.Fatalf("node, init context of %s: %v\n%s", script, err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	if got["setup"] != "function" || got["default"] != "function" {
		t.Errorf("%s exports setup %v and default %v, want functions", script, got["setup"], got["default"])
	}
	options, _ := got["options"].(map[string]any)
	return options
}

// TestK6ScriptsUseTheDefinitions runs each k6 script's init context (in
// Node, k6's modules stubbed) and checks the options it gives k6: its
// scenarios are exactly the phases of the scenario of scenarios.json it is
// named after (full and smoke), as constant-arrival-rate executors back to
// back, and its thresholds exactly that scenario's. Every scenario has its
// script.
func TestK6ScriptsUseTheDefinitions(t *testing.T) {
	node, err := exec.LookPath("node")
	servicetest.Require(t, "node (to run the k6 scripts' init context)", err)
	defs, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, script := range scripts(t) {
		name := strings.TrimSuffix(filepath.Base(script), ".js")
		named = append(named, name)
		s, ok := defs.Scenarios[name]
		if !ok {
			t.Errorf("%s: no scenario %q in scenarios.json", script, name)
			continue
		}
		for _, smoke := range []bool{false, true} {
			env, phases := map[string]string{}, s.Phases
			if smoke {
				env["SMOKE"], phases = "1", s.Smoke
			}
			t.Run(fmt.Sprintf("%s smoke=%v", name, smoke), func(t *testing.T) {
				options := evalOptions(t, node, script, env)
				if diff := cmp.Diff(wantK6Scenarios(name, phases), options["scenarios"]); diff != "" {
					t.Errorf("options.scenarios (-from the definitions +the script's):\n%s", diff)
				}
				if diff := cmp.Diff(wantK6Thresholds(s.Thresholds), options["thresholds"]); diff != "" {
					t.Errorf("options.thresholds (-from the definitions +the script's):\n%s", diff)
				}
			})
		}
	}
	for _, name := range defs.ScenarioNames() {
		if !slices.Contains(named, name) {
			t.Errorf("scenario %s has no script k6/%s.js", name, name)
		}
	}
}

// wantK6Scenarios is what k6 must be given for phases of scenario name: a
// constant-arrival-rate scenario per phase, each starting when the one
// before ends (as JSON decodes it: numbers are float64).
func wantK6Scenarios(name string, phases []Phase) any {
	out := map[string]any{}
	var start time.Duration
	for i, p := range phases {
		out[fmt.Sprintf("%s-%d", name, i+1)] = map[string]any{
			"executor": "constant-arrival-rate", "rate": float64(p.Rate), "timeUnit": "1s",
			"duration": p.Duration, "startTime": fmt.Sprintf("%ds", int(start.Seconds())),
			"preAllocatedVUs": float64(max(10, p.Rate)), "maxVUs": float64(max(50, 10*p.Rate)),
		}
		start += p.duration()
	}
	return out
}

func wantK6Thresholds(ts []Threshold) any {
	out := map[string]any{}
	for _, t := range ts {
		exprs, _ := out[t.Key()].([]any)
		out[t.Key()] = append(exprs, t.Expression())
	}
	return out
}

// TestK6ScriptsNameNothingByHand: besides the scenario it is named after,
// a script spells no scenario, metric or threshold of its own; they come
// from scenarios.json through lib.js.
func TestK6ScriptsNameNothingByHand(t *testing.T) {
	literal := regexp.MustCompile(`'([^'\\]*)'`)
	defs, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, script := range scripts(t) {
		b, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(script), ".js")
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			switch lit := m[1]; {
			case lit == name, lit == "./lib.js", lit == "../scenarios.json":
			default:
				t.Errorf("%s spells %q: scenarios, metrics and thresholds come from the definitions (%v)", script, lit, defs.ScenarioNames())
			}
		}
	}
}
