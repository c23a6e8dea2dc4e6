package httpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/servicetest"
)

// startLimited serves, behind a real listener, POST /json (DecodeJSON with
// the router's default limit) and POST /small/json (a group limited to 16
// KiB).
func startLimited(t *testing.T) string {
	t.Helper()
	r := httpserver.NewRouter(discard(), health.New(0))
	decode := func(c *gin.Context) {
		var v struct{ A string }
		if err := httpserver.DecodeJSON(c.Writer, c.Request, &v, 0); err != nil {
			var p *problem.Details
			errors.As(err, &p)
			problem.Write(c.Writer, *p)
			return
		}
		c.JSON(http.StatusOK, gin.H{"length": len(v.A)})
	}
	r.POST("/json", decode)
	r.Group("/small", httpserver.LimitBody(16<<10)).POST("/json", decode)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, _ := startServe(t, ctx, httpserver.Config{}, r, health.New(0))
	return addr
}

func TestLimitBodyAnswers413OverRealSockets(t *testing.T) {
	addr := startLimited(t)
	type upload struct {
		chunked, expect bool
	}
	uploads := map[string]upload{
		"declared":               {},
		"declared, 100-continue": {expect: true},
		"chunked":                {chunked: true},
		"chunked, 100-continue":  {chunked: true, expect: true},
	}
	for _, path := range []string{"/json", "/small/json"} {
		for _, size := range []int64{600 << 10, 10 << 20} {
			for name, up := range uploads {
				t.Run(fmt.Sprintf("%s %s %d bytes", path, name, size), func(t *testing.T) {
					got := servicetest.Upload{Method: "POST", Path: path, Size: size, Chunked: up.chunked, ExpectContinue: up.expect}.Send(t, addr)
					if got.Err != nil {
						t.Fatalf("no answer: %v (interim %v)", got.Err, got.Interim)
					}
					if got.Status != http.StatusRequestEntityTooLarge {
						t.Errorf("status = %d, want 413; body %s", got.Status, got.Body)
					}
					var p problem.Details
					if ct := got.Header.Get("Content-Type"); ct != problem.ContentType || json.Unmarshal(got.Body, &p) != nil || p.Status != 413 {
						t.Errorf("answer %q (%s) is not a 413 problem", got.Body, ct)
					}
					// Only a body of undeclared length has to be read to be
					// found too long, and reading it asks for it.
					wantInterim := []int(nil)
					if up.chunked && up.expect {
						wantInterim = []int{100}
					}
					if !slices.Equal(got.Interim, wantInterim) {
						t.Errorf("interim answers = %v, want %v", got.Interim, wantInterim)
					}
					if !got.Close || !errors.Is(got.AfterAnswer, io.EOF) {
						t.Errorf("after the answer the connection gave %v, want a clean close (EOF)", got.AfterAnswer)
					}
				})
			}
		}
	}
}

func TestLimitBodyLetsSmallBodiesThrough(t *testing.T) {
	addr := startLimited(t)
	tests := []struct {
		name string
		up   servicetest.Upload
	}{
		{"declared", servicetest.Upload{Method: "POST", Path: "/small/json", Size: 16 << 10}},
		{"chunked", servicetest.Upload{Method: "POST", Path: "/small/json", Size: 16 << 10, Chunked: true}},
		{"declared, 100-continue", servicetest.Upload{Method: "POST", Path: "/small/json", Size: 16 << 10, ExpectContinue: true}},
		{"router default", servicetest.Upload{Method: "POST", Path: "/json", Size: httpserver.DefaultMaxBody}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.up.Send(t, addr)
			if got.Err != nil || got.Status != http.StatusOK {
				t.Fatalf("answer = %d %s (%v), want 200", got.Status, got.Body, got.Err)
			}
			if want := fmt.Sprintf(`{"length":%d}`, tt.up.Size-8); strings.TrimSpace(string(got.Body)) != want {
				t.Errorf("body = %s, want %s", got.Body, want)
			}
			if got.Close {
				t.Error("a good request's answer closes the connection, want it kept open")
			}
		})
	}
}
