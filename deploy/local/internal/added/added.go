// Package added is the list of services added to the shop with
// `make new-service` (deploy/local/cmd/newservice): the one place the
// generator writes and the launcher, its tests and the Makefile read, so
// that a new service is started by `make run` and `make run-full` without
// anyone editing Go code.
//
// Why a data file and not a generator that edits the launcher's source: a
// program that splices lines into Go code breaks the day someone reformats
// or refactors that code, and its edits are hard to review; a list of
// names and ports has one obvious format, is checked by Parse, and is what
// a reader looks for when asking "what does the launcher start?".
//
// The list is embedded in the launcher at build time (make run and make
// run-full rebuild it), so the launcher needs no path to it at run time.
package added

import (
	_ "embed"
	"errors"
	"fmt"
	"go/token"
	"regexp"
	"strconv"
	"strings"
)

// File is the list's path in the repository.
const File = "deploy/local/internal/added/services.txt"

// list is services.txt as built into this binary.
//
//go:embed services.txt
var list string

// Service is an added service as the launcher starts it: a service built
// on pkg/sagaservice, configured by <PREFIX>_HTTP_ADDR, _DATABASE_URL and
// _KAFKA_BROKERS, its binary named Name.
type Service struct {
	// Name is the service's name: its directory services/<Name>, its
	// program cmd/<Name>, its process, Consul service and database name.
	Name string
	// PortOffset is its HTTP port relative to the launcher's -port-base.
	PortOffset int
}

// EnvPrefix is the prefix of the service's variables: "SHIPPING_".
func (s Service) EnvPrefix() string { return strings.ToUpper(s.Name) + "_" }

// Builtin returns the port offsets of the shop's own processes by name
// (gateway 0, order 1, inventory 2, payment 3, the payment provider
// simulator 10), which an added service must not take, nor their names.
func Builtin() map[string]int {
	return map[string]int{"gateway": 0, "order": 1, "inventory": 2, "payment": 3, "psp": 10}
}

// Services returns the services of the list built into this binary. The
// list is checked by a test (TestEmbeddedListParses), so an error here is
// a list edited by hand and not tested.
func Services() ([]Service, error) { return Parse(list) }

// namePattern is what a service name may be: a Go package name in
// lowercase letters and digits, as the directory, the program, the
// database and the variables' prefix all need.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// ValidName reports why name cannot name a service, or nil: it must be a
// lowercase identifier of letters and digits (at most 30) and not a Go
// keyword.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("is empty")
	case len(name) > 30:
		return fmt.Errorf("%q is longer than 30 characters", name)
	case !namePattern.MatchString(name):
		return fmt.Errorf("%q is not a lowercase letter followed by lowercase letters or digits", name)
	case token.IsKeyword(name):
		return fmt.Errorf("%q is a Go keyword", name)
	}
	return nil
}

// Parse reads a list: blank lines and lines starting with # are skipped,
// every other line is "<name> <port offset>". It refuses invalid names,
// duplicate names, offsets below 0 or taken by a built-in process or by
// another added service.
func Parse(text string) ([]Service, error) {
	var services []Service
	names := map[string]bool{}
	offsets := map[int]string{}
	for name, offset := range Builtin() {
		names[name], offsets[offset] = true, name
	}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fail("want <name> <port offset>")
		}
		s := Service{Name: fields[0]}
		if err := ValidName(s.Name); err != nil {
			return nil, fail("name %v", err)
		}
		if names[s.Name] {
			return nil, fail("%s is listed twice or is a built-in process", s.Name)
		}
		offset, err := strconv.Atoi(fields[1])
		if err != nil || offset < 0 {
			return nil, fail("port offset %q is not a whole number from 0", fields[1])
		}
		if taken, ok := offsets[offset]; ok {
			return nil, fail("port offset %d is %s's", offset, taken)
		}
		s.PortOffset = offset
		names[s.Name], offsets[offset] = true, s.Name
		services = append(services, s)
	}
	return services, nil
}

// NextOffset returns the lowest port offset that neither a built-in
// process nor one of services takes.
func NextOffset(services []Service) int {
	taken := map[int]bool{}
	for _, offset := range Builtin() {
		taken[offset] = true
	}
	for _, s := range services {
		taken[s.PortOffset] = true
	}
	offset := 0
	for taken[offset] {
		offset++
	}
	return offset
}

// MaxOffset returns the highest port offset of the shop's processes, the
// built-in ones and services.
func MaxOffset(services []Service) int {
	highest := 0
	for _, offset := range Builtin() {
		highest = max(highest, offset)
	}
	for _, s := range services {
		highest = max(highest, s.PortOffset)
	}
	return highest
}

// Line is s as a line of the list, with its newline.
func (s Service) Line() string { return fmt.Sprintf("%s %d\n", s.Name, s.PortOffset) }
