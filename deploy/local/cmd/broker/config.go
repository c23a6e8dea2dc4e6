package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
)

// config is the broker's configuration, read from flags and environment.
type config struct {
	// Addr is the host:port the broker listens on and, unless Advertise
	// is set, advertises to clients, so its host must then be one clients
	// can dial.
	Addr string
	// Advertise is the host:port clients are told to connect to; empty
	// means Addr. Set it when listening on a wildcard address, as in a
	// container: -addr 0.0.0.0:9092 -advertise broker:9092.
	Advertise string
	// DataDir is where the broker keeps its state; empty means memory only.
	DataDir string
	// Partitions is the partition count of a topic created automatically.
	Partitions int
}

// loadConfig parses args, falling back to the environment read through
// getenv for a flag that is not given. For -h it writes the usage to help and
// returns flag.ErrHelp.
func loadConfig(args []string, getenv func(string) string, help io.Writer) (config, error) {
	cfg := config{
		Addr:       "127.0.0.1:9092",
		DataDir:    ".run/kafka",
		Partitions: 3,
	}
	if v := getenv("BROKER_ADDR"); v != "" {
		cfg.Addr = v
	}
	cfg.Advertise = getenv("BROKER_ADVERTISE_ADDR")
	if v := getenv("BROKER_DATA_DIR"); v != "" {
		cfg.DataDir = v
	}

	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, not printed
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "`host:port` to listen on and advertise to clients; port 0 picks a free one (env BROKER_ADDR)")
	fs.StringVar(&cfg.Advertise, "advertise", cfg.Advertise, "`host:port` clients are told to connect to; empty: -addr (env BROKER_ADVERTISE_ADDR)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "`dir`ectory for the broker's state, created if missing; empty keeps it in memory (env BROKER_DATA_DIR)")
	fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "`n`umber of partitions of a topic created automatically")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(help, "Usage: broker [flags]")
		fs.SetOutput(help)
		fs.PrintDefaults()
		return config{}, err
	}
	if err != nil {
		return config{}, fmt.Errorf("parse flags: %w", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q: the broker takes flags only", fs.Args())
	}

	if cfg.Advertise == "" {
		if err := checkAddr(cfg.Addr); err != nil {
			return config{}, fmt.Errorf("invalid -addr (BROKER_ADDR) %q: %w", cfg.Addr, err)
		}
	} else {
		if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
			return config{}, fmt.Errorf("invalid -addr (BROKER_ADDR) %q: %w", cfg.Addr, err)
		}
		if err := checkAddr(cfg.Advertise); err != nil {
			return config{}, fmt.Errorf("invalid -advertise (BROKER_ADVERTISE_ADDR) %q: %w", cfg.Advertise, err)
		}
	}
	if cfg.Partitions < 1 {
		return config{}, fmt.Errorf("invalid -partitions %d: must be at least 1", cfg.Partitions)
	}
	return cfg, nil
}

// checkAddr reports whether addr can be both listened on and advertised:
// kfake tells clients to connect to the address it is bound to, so a
// wildcard host would send them to 0.0.0.0 or ::.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("host is required, since clients are told to connect to it")
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("host %s is a wildcard, but clients are told to connect to it", host)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}
