package limit

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkDecide is the limiter's cost per request on a bare Gin router:
// a request admitted by each algorithm (and released), and one refused by
// a route's empty bucket. The decision is what the middleware adds; the
// overload benchmark (docs/benchmarks.md) measures the rest.
//
//	go test ./pkg/limit -run '^$' -bench Decide -benchtime 200000x
func BenchmarkDecide(b *testing.B) {
	for _, alg := range Algorithms {
		b.Run("admit/"+string(alg), func(b *testing.B) {
			l, err := New(Config{}, Rules{Adaptive: alg, Routes: testRoutes})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			serve(b, newServer(l), "/checkout", http.StatusNoContent)
		})
	}
	b.Run("reject/route", func(b *testing.B) {
		rules := Rules{Adaptive: None, Routes: map[string]Route{"GET /browse": {Priority: Low, Bucket: Bucket{Rate: 1e-9, Burst: 1}}}}
		l, err := New(Config{}, rules)
		if err != nil {
			b.Fatal(err)
		}
		s := newServer(l)
		s.get("/browse", "")
		serve(b, s, "/browse", http.StatusTooManyRequests)
	})
}

func serve(b *testing.B, s *server, path string, want int) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != want {
			b.Fatalf("status %d, want %d", rec.Code, want)
		}
	}
}
