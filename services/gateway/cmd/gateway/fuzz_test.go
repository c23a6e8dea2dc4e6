package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/gateway/internal/auth"
	"github.com/microshop/microshop/services/gateway/internal/httpapi"
	"github.com/microshop/microshop/services/gateway/internal/upstream"
)

// fuzzTarget is the gateway's router in front of the fakes, called without a
// network hop so the fuzzer runs fast. It returns a valid customer token too.
func fuzzTarget(f *testing.F) (*gin.Engine, string) {
	f.Helper()
	servers := map[string]*httptest.Server{
		"inventory": httptest.NewServer(fakeInventory()),
		"order":     httptest.NewServer(fakeOrders()),
		"psp":       httptest.NewServer(fakePSP()),
	}
	clients := map[string]*upstream.Client{}
	for name, s := range servers {
		f.Cleanup(s.Close)
		c, err := upstream.New(name, s.URL, 5*time.Second, nil)
		if err != nil {
			f.Fatal(err)
		}
		clients[name] = c
	}
	tokens, err := auth.NewTokens([]byte(strings.Repeat("k", 32)), time.Hour, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	a, err := httpapi.New(context.Background(), log, auth.DemoDirectory(), tokens,
		httpapi.Upstreams{Inventory: clients["inventory"], Orders: clients["order"], PSP: clients["psp"]})
	if err != nil {
		f.Fatal(err)
	}
	r := httpserver.NewRouter(log, health.New(0))
	a.Register(r)
	token, _, err := tokens.Issue(auth.User{ID: "cus_alice", Role: auth.RoleCustomer})
	if err != nil {
		f.Fatal(err)
	}
	return r, token
}

func serve(r http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	return rec
}

func FuzzCreateOrderBody(f *testing.F) {
	r, token := fuzzTarget(f)
	f.Add(`{"card_number":"4242424242424242","lines":[{"sku":"MUG-CLASSIC","quantity":1}]}`, "key-1")
	f.Add(`{"lines":[{"sku":"MUG-CLASSIC","quantity":1e400}]}`, "k")
	f.Add(`{"lines":null}`, "")
	f.Fuzz(func(t *testing.T, body, key string) {
		req := httptest.NewRequest("POST", "/api/v1/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header["Idempotency-Key"] = []string{key}
		servicetest.CheckNoServerError(t, serve(r, req))
	})
}

func FuzzLoginBody(f *testing.F) {
	r, _ := fuzzTarget(f)
	f.Add(`{"username":"alice","password":"alice-demo"}`)
	f.Add(`{"username":"\ud800","password":""}`)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		servicetest.CheckNoServerError(t, serve(r, req))
	})
}

func FuzzQueryAndPath(f *testing.F) {
	r, token := fuzzTarget(f)
	f.Add("/api/v1/products", "limit=5&cursor=abc&q=mug&in_stock=true", "")
	f.Add("/api/v1/orders", "limit=0", "Bearer x")
	f.Add("/api/v1/products/MUG-CLASSIC", "", "")
	f.Fuzz(func(t *testing.T, path, query, authz string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest("GET", "http://gateway"+path+"?"+query, nil)
		if err != nil {
			return // not a request a client could send
		}
		if authz == "" {
			authz = "Bearer " + token
		}
		req.Header["Authorization"] = []string{authz}
		servicetest.CheckNoServerError(t, serve(r, req))
	})
}
