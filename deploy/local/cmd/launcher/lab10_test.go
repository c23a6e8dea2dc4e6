package main

import (
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/deploy/local/internal/added"
	"github.com/microshop/microshop/deploy/local/internal/newservicetest"
	"github.com/microshop/microshop/deploy/local/internal/supervise"
	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/psp/simulator"
)

// actNewService is lab 10's action: make new-service NAME=shipping
// RECORD=shipment, shipping running with the stack, and an order placed as
// the README places it (Idempotency-Key lab-10-…). TestLabs' stack runs
// the repository as it is: where shipping is not in the launcher's list
// (the lab not done in this repository), the service is generated into a
// directory of its own (newservicetest.Root), built, and started beside
// the stack as the launcher would start it — its own database in the
// stack's PostgreSQL, the broker, Consul.
func actNewService(t *testing.T, st *labStack) {
	services, _ := addedServices(t)
	if !slices.ContainsFunc(services, func(s added.Service) bool { return s.Name == "shipping" }) {
		startGeneratedShipping(t, st)
	}
	c := labLogin(t, st)
	for i, card := range []string{simulator.CardSucceeds, simulator.CardDeclined} { // the README's good, then declined card
		key := "lab-10-" + strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + strconv.Itoa(i)
		if _, err := c.checkout(t.Context(), st.Gateway, key, card); err != nil {
			t.Fatalf("place an order with card %s: %v", card, err)
		}
	}
}

// startGeneratedShipping runs make new-service NAME=shipping
// RECORD=shipment outside the repository, builds the service and starts
// it on st's broker, PostgreSQL and Consul until the test ends.
func startGeneratedShipping(t *testing.T, st *labStack) {
	t.Helper()
	root := newservicetest.Root(t)
	repo, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	generate := exec.CommandContext(t.Context(), "go", "run", "./deploy/local/cmd/newservice", "-name", "shipping", "-record", "shipment", "-root", root)
	generate.Dir = repo
	if out, err := generate.CombinedOutput(); err != nil {
		t.Fatalf("make new-service NAME=shipping RECORD=shipment: %v\n%s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "shipping")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/shipping")
	build.Dir = filepath.Join(root, "services", "shipping")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build shipping: %v\n%s", err, out)
	}

	// Its database, as the launcher creates one per service in the full mode.
	admin := strings.Replace(st.Databases["order"], "/orderdb?", "/postgres?", 1)
	db, err := database.Open(t.Context(), admin, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Exec("CREATE DATABASE shippingdb").Error
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	addr := servicetest.FreeAddr(t)
	shipping := &supervise.Process{
		Name: "shipping",
		Path: bin,
		Env: []string{
			"SHIPPING_HTTP_ADDR=" + addr,
			"SHIPPING_DATABASE_URL=" + strings.Replace(st.Databases["order"], "/orderdb?", "/shippingdb?", 1),
			"SHIPPING_KAFKA_BROKERS=" + st.Broker,
			"CONSUL_HTTP_ADDR=" + strings.TrimPrefix(st.Consul, "http://"),
		},
		URL: "http://" + addr,
	}
	logs := &logtest.Buffer{}
	out := supervise.NewOutput(logs, nil)
	if _, err := supervise.StartAll(t.Context(), out, []*supervise.Process{shipping}, time.Minute); err != nil {
		t.Fatalf("start shipping: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		if err := shipping.Stop(out, 20*time.Second); err != nil {
			t.Errorf("stop shipping: %v", err)
		}
		if t.Failed() {
			t.Logf("shipping's output:\n%s", logs)
		}
	})
}
