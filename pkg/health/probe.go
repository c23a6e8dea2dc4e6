package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
)

// Probe asks the server listening on listenAddr, from the same host,
// whether it is ready: nil if its /readyz answers 200. A wildcard host
// (0.0.0.0, ::, none) is dialled on the loopback interface. It is what a
// program's healthcheck mode runs, so that an image without curl or a
// shell can be health-checked (pkg/process.Main).
func Probe(ctx context.Context, listenAddr string) error {
	url := "http://" + dialAddr(listenAddr) + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// dialAddr turns a listen address into one to dial from the same host.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.To4() != nil && ip.IsUnspecified()):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
