// Command httptarget is the HTTP server the probe's tests attach to: a few
// routes with known statuses, its own count of every request it served, and
// a route that dials an address, so that a test can make it open (or fail
// to open) an outbound connection.
//
// It prints "listening on ADDR" once it accepts connections.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httptarget:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	srv := &http.Server{Handler: newServer(), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "httptarget:", err)
		os.Exit(1)
	}
}

// Count is the number of requests served with one method, path and status.
type Count struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	Count  int    `json:"count"`
}

type key struct {
	method, path string
	status       int
}

type server struct {
	mux    *http.ServeMux
	mu     sync.Mutex
	counts map[key]int
}

func newServer() *server {
	s := &server{mux: http.NewServeMux(), counts: make(map[key]int)}
	s.mux.HandleFunc("GET /items", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `["apple","pear"]`)
	})
	s.mux.HandleFunc("POST /orders", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	s.mux.HandleFunc("GET /boom", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	// Writes nothing: net/http answers 200 after the handler returns.
	s.mux.HandleFunc("GET /empty", func(http.ResponseWriter, *http.Request) {})
	s.mux.HandleFunc("GET /dial", func(w http.ResponseWriter, r *http.Request) {
		conn, err := net.DialTimeout("tcp", r.URL.Query().Get("addr"), 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn.Close()
	})
	s.mux.HandleFunc("GET /counts", s.serveCounts)
	return s
}

// ServeHTTP counts each request once its handler returned; GET /counts
// answers the counts so far, its own request not included.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	s.mu.Lock()
	s.counts[key{r.Method, r.URL.Path, rec.status}]++
	s.mu.Unlock()
}

func (s *server) serveCounts(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	counts := make([]Count, 0, len(s.counts))
	for k, n := range s.counts {
		counts = append(counts, Count{Method: k.method, Path: k.path, Status: k.status, Count: n})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(counts)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
