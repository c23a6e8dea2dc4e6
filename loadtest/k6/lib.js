// lib.js turns a scenario of ../scenarios.json into k6 options and an
// iteration, exactly as our Go runner (loadtest/run.go) reads the same
// definitions: phases become constant-arrival-rate scenarios one after the
// other, the mix is one fixed cycle of requests, thresholds keep their
// metric (with {name:<request>}) and expression. Each script in this
// directory is one scenario: it reads the definitions with open() (which
// only works in its init context) and calls these.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';

const confirmed = new Rate('checkout_confirmed');
const completion = new Trend('checkout_completion', true);

// base is the gateway's URL: BASE_URL=http://host:port to change it.
const base = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');

// scenarioOf returns scenario name of defs, or throws.
function scenarioOf(defs, name) {
  const s = defs.scenarios[name];
  if (!s) {
    throw new Error(`no scenario "${name}" in scenarios.json`);
  }
  return s;
}

// k6Options returns k6's options for scenario name of defs: its phases
// (SMOKE=1: its smoke phases) as constant-arrival-rate scenarios named
// <name>-<phase>, back to back, and its thresholds.
export function k6Options(defs, name) {
  const s = scenarioOf(defs, name);
  const phases = __ENV.SMOKE ? s.smoke : s.phases;
  const scenarios = {};
  let start = 0;
  phases.forEach((p, i) => {
    scenarios[`${name}-${i + 1}`] = {
      executor: 'constant-arrival-rate',
      rate: p.rate,
      timeUnit: '1s',
      duration: p.duration,
      startTime: `${start}s`,
      preAllocatedVUs: Math.max(10, p.rate),
      maxVUs: Math.max(50, 10 * p.rate),
    };
    start += seconds(p.duration);
  });
  const thresholds = {};
  for (const t of s.thresholds) {
    const key = t.request ? `${t.metric}{name:${t.request}}` : t.metric;
    (thresholds[key] = thresholds[key] || []).push(`${t.stat}${t.op}${t.value}`);
  }
  return { scenarios, thresholds, setupTimeout: '60s' };
}

// seconds reads a Go duration of whole units: "90s", "2m", "1h", "1m30s".
function seconds(d) {
  const units = { h: 3600, m: 60, s: 1 };
  let total = 0;
  for (const [, n, unit] of d.matchAll(/(\d+)(h|m|s)/g)) {
    total += Number(n) * units[unit];
  }
  return total;
}

// cycle spreads the mix over one cycle of its total weight, requests in
// name order, as the Go runner does.
function cycle(mix) {
  const out = [];
  for (const name of Object.keys(mix).sort()) {
    for (let i = 0; i < mix[name]; i++) {
      out.push(name);
    }
  }
  return out;
}

function login(user) {
  const res = http.post(`${base}/api/v1/login`, JSON.stringify(user), {
    headers: { 'Content-Type': 'application/json' },
  });
  if (res.status !== 200) {
    throw new Error(`log in as ${user.username}: ${res.status} ${res.body}`);
  }
  return res.json('access_token');
}

// setup logs the customer in and, when the mix places orders, restocks
// every SKU as the admin.
export function setupFor(defs, name) {
  const s = scenarioOf(defs, name);
  const token = login(defs.customer);
  if (Object.keys(s.mix).some((r) => defs.requests[r].order)) {
    const admin = login(defs.admin);
    for (const sku of defs.skus) {
      const res = http.post(`${base}/api/v1/admin/products/${sku}/stock-adjustments`,
        JSON.stringify({ delta: defs.restock }),
        { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${admin}` } });
      if (res.status !== 200) {
        throw new Error(`restock ${sku}: ${res.status} ${res.body}`);
      }
    }
  }
  return { token };
}

// iterationFor returns the scenario's iteration: request n of the run is
// cycle[n % cycle.length], its SKU the next one every cycle. A placed
// order is followed until final.
export function iterationFor(defs, name) {
  const s = scenarioOf(defs, name);
  const mix = cycle(s.mix);
  const shed = s.shed || [];
  http.setResponseCallback(http.expectedStatuses({ min: 200, max: 399 }, ...shed));
  return function (data) {
    const n = exec.scenario.iterationInTest;
    const reqName = mix[n % mix.length];
    const req = defs.requests[reqName];
    const sku = defs.skus[Math.floor(n / mix.length) % defs.skus.length];
    const headers = {};
    let body = null;
    if (req.auth) {
      headers.Authorization = `Bearer ${data.token}`;
    }
    if (req.order) {
      headers['Content-Type'] = 'application/json';
      headers['Idempotency-Key'] = `k6-${exec.vu.idInTest}-${exec.vu.iterationInScenario}-${Date.now()}`;
      body = JSON.stringify({ card_number: defs.card, lines: [{ sku, quantity: 1 }] });
    }
    const res = http.request(req.method, base + req.path.replace('{sku}', sku), body, { headers, tags: { name: reqName } });
    check(res, { 'answered': (r) => r.status >= 200 && r.status < 400 || shed.includes(r.status) });
    if (req.order && (res.status === 202 || res.status === 200)) {
      follow(res.json('id'), data.token);
    }
  };
}

// follow reads the order until it is final (30 s at most) and records
// whether it was CONFIRMED and, if so, how long it took by its own
// timestamps.
function follow(id, token) {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    const res = http.get(`${base}/api/v1/orders/${id}`, {
      headers: { Authorization: `Bearer ${token}` }, tags: { name: 'follow-order' },
    });
    const status = res.status === 200 ? res.json('status') : 'PENDING';
    if (status !== 'PENDING') {
      confirmed.add(status === 'CONFIRMED');
      if (status === 'CONFIRMED') {
        completion.add(Date.parse(res.json('updated_at')) - Date.parse(res.json('created_at')));
      }
      return;
    }
    sleep(0.05);
  }
  confirmed.add(false);
}
