package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// With -profile, every service serves the Go profiler on an admin address
// that bench chose (<SERVICE>_ADMIN_ADDR, set in the launcher's environment,
// which the services inherit), and bench fetches a CPU profile of the
// measurement window from each: /debug/pprof/profile?seconds=N from the
// window's start. The profiler costs the services some CPU while it runs,
// which the CPU figures of such a run include.

// adminEnv returns the environment that gives each service an admin
// address on 127.0.0.1 from port base on, and those addresses by service.
func adminEnv(base int) (env []string, addrs map[string]string) {
	addrs = map[string]string{}
	for i, s := range services {
		addr := "127.0.0.1:" + strconv.Itoa(base+i)
		addrs[s.name] = addr
		env = append(env, strings.ToUpper(s.name)+"_ADMIN_ADDR="+addr)
	}
	return env, addrs
}

// fetchProfiles fetches a CPU profile of window (whole seconds, at least
// one) from every admin address, all at once, and writes each to
// dir/<service>.pprof. It returns the files written, and an error for each
// service whose profile it could not get.
func fetchProfiles(ctx context.Context, dir string, addrs map[string]string, window time.Duration) ([]string, error) {
	seconds := max(1, int(window/time.Second))
	client := &http.Client{Timeout: time.Duration(seconds)*time.Second + 30*time.Second}
	type result struct {
		file string
		err  error
	}
	results := make(chan result, len(addrs))
	for name, addr := range addrs {
		go func() {
			file := filepath.Join(dir, name+".pprof")
			err := fetchProfile(ctx, client, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), file)
			if err != nil {
				err = fmt.Errorf("CPU profile of %s: %w", name, err)
			}
			results <- result{file, err}
		}()
	}
	var files []string
	var errs []error
	for range addrs {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		files = append(files, r.file)
	}
	return files, errors.Join(errs...)
}

func fetchProfile(ctx context.Context, client *http.Client, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
