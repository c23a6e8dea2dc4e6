// Package gobin reads, from a Go executable, what the HTTP probe needs to
// trace its server: where net/http.serverHandler.ServeHTTP starts and where
// it returns, and the offsets of the request and response fields the probe
// reads. Everything comes from the executable itself — its symbol table,
// its machine code and its DWARF — so one probe serves programs built by any
// Go version with the register ABI (1.17 and later) without a table of
// offsets per version.
//
// The return points are the function's RET instructions, found by
// disassembling it: a uretprobe would swap the return address on the
// goroutine stack, which the Go runtime moves and inspects, and the traced
// program crashes.
package gobin

import (
	"debug/buildinfo"
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"go/version"

	"golang.org/x/arch/x86/x86asm"
)

// ServeHTTP is the function the probe traces: every request an
// net/http.Server serves passes through it, whatever the router.
const ServeHTTP = "net/http.serverHandler.ServeHTTP"

// responseItab is the symbol of the interface table that makes a
// *net/http.response a net/http.ResponseWriter (HTTP/1.x).
const responseItab = "go:itab.*net/http.response,net/http.ResponseWriter"

var (
	// ErrNotGo: the executable has no Go build information.
	ErrNotGo = errors.New("not a Go executable")
	// ErrNoHTTPServer: the executable does not contain net/http's server.
	ErrNoHTTPServer = errors.New("no net/http server in the executable")
	// ErrNoDWARF: the executable was built without DWARF (-ldflags=-w).
	ErrNoDWARF = errors.New("no DWARF in the executable (built with -ldflags=-w?)")
)

// HTTPServer is the layout of one executable's net/http server.
type HTTPServer struct {
	// GoVersion is the toolchain that built the executable ("go1.26.8").
	GoVersion string
	// Entry is the offset from ServeHTTP's start where the entry probe
	// goes: the conditional jump of the stack check that opens every Go
	// function (CMPQ SP, 16(R14); JBE morestack), which the kernel
	// emulates, where the first instruction would be single-stepped out of
	// line — one trap fewer per request. The argument registers are still
	// those of the call there. 0 (the start) when the function does not
	// open so.
	Entry uint64
	// Returns are the offsets of ServeHTTP's RET instructions from its start.
	Returns []uint64
	// Offsets of fields in net/http.Request, net/url.URL and net/http.response.
	RequestMethod, RequestURL, URLPath, ResponseStatus uint64
	// ResponseItab is the address of the *net/http.response ResponseWriter
	// itab; 0 in a position-independent executable, whose addresses are only
	// known once loaded.
	ResponseItab uint64
}

// ReadHTTPServer reads the layout of the net/http server in the executable
// at path. It fails with ErrNotGo, ErrNoHTTPServer or ErrNoDWARF (wrapped)
// when the executable cannot be traced, and for any architecture but amd64.
func ReadHTTPServer(path string) (HTTPServer, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return HTTPServer{}, fmt.Errorf("%s: %w: %v", path, ErrNotGo, err)
	}
	if version.Compare(info.GoVersion, "go1.17") < 0 {
		return HTTPServer{}, fmt.Errorf("%s: built by %s, before Go's register ABI (go1.17)", path, info.GoVersion)
	}
	f, err := elf.Open(path)
	if err != nil {
		return HTTPServer{}, err
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return HTTPServer{}, fmt.Errorf("%s: %v executables are not supported, only amd64", path, f.Machine)
	}

	s := HTTPServer{GoVersion: info.GoVersion}
	symbols, err := f.Symbols()
	if err != nil {
		return HTTPServer{}, fmt.Errorf("%s: symbols: %w", path, err)
	}
	var serve *elf.Symbol
	for i, sym := range symbols {
		switch sym.Name {
		case ServeHTTP:
			serve = &symbols[i]
		case responseItab:
			if f.Type == elf.ET_EXEC {
				s.ResponseItab = sym.Value
			}
		}
	}
	if serve == nil {
		return HTTPServer{}, fmt.Errorf("%s: %w", path, ErrNoHTTPServer)
	}
	code, err := functionCode(f, serve)
	if err != nil {
		return HTTPServer{}, fmt.Errorf("%s: %s: %w", path, ServeHTTP, err)
	}
	s.Entry = stackCheckJump(code)
	if s.Returns, err = returns(code); err != nil {
		return HTTPServer{}, fmt.Errorf("%s: %s: %w", path, ServeHTTP, err)
	}
	if err := s.readOffsets(f); err != nil {
		return HTTPServer{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// functionCode reads the machine code of fn.
func functionCode(f *elf.File, fn *elf.Symbol) ([]byte, error) {
	text := f.Section(".text")
	if text == nil || fn.Value < text.Addr || fn.Value+fn.Size > text.Addr+text.Size {
		return nil, errors.New("not in .text")
	}
	code := make([]byte, fn.Size)
	if _, err := text.ReadAt(code, int64(fn.Value-text.Addr)); err != nil {
		return nil, fmt.Errorf("read code: %w", err)
	}
	return code, nil
}

// stackCheckJump is the offset of the conditional jump that ends a Go
// function's stack check — CMPQ SP, 16(R14), or LEAQ -n(SP), R12 and
// CMPQ R12, 16(R14) for a large frame, then JBE — or 0 if code does not
// start so. Up to there only the flags and R12 have changed.
func stackCheckJump(code []byte) uint64 {
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		switch {
		case err != nil:
			return 0
		case inst.Op == x86asm.JBE:
			return uint64(off)
		case inst.Op == x86asm.CMP, inst.Op == x86asm.LEA && inst.Args[0] == x86asm.R12:
			off += inst.Len
		default:
			return 0
		}
	}
	return 0
}

// returns lists the offsets of the RET instructions in code.
func returns(code []byte) ([]uint64, error) {
	var rets []uint64
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil { // padding after the last instruction
			off++
			continue
		}
		if inst.Op == x86asm.RET {
			rets = append(rets, uint64(off))
		}
		off += inst.Len
	}
	if len(rets) == 0 {
		return nil, errors.New("no RET instruction")
	}
	return rets, nil
}

// field names a struct member whose offset the probe needs.
type field struct {
	typ, member string
	offset      *uint64
}

// readOffsets fills the field offsets from the DWARF type entries.
func (s *HTTPServer) readOffsets(f *elf.File) error {
	d, err := f.DWARF()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDWARF, err)
	}
	fields := []field{
		{"net/http.Request", "Method", &s.RequestMethod},
		{"net/http.Request", "URL", &s.RequestURL},
		{"net/url.URL", "Path", &s.URLPath},
		{"net/http.response", "status", &s.ResponseStatus},
	}
	wanted := make(map[string][]field)
	for _, fl := range fields {
		wanted[fl.typ] = append(wanted[fl.typ], fl)
	}
	found := 0
	r := d.Reader()
	for found < len(fields) {
		e, err := r.Next()
		if err != nil {
			return fmt.Errorf("read DWARF: %w", err)
		}
		if e == nil {
			break
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		want, ok := wanted[name]
		if !ok || !e.Children {
			continue
		}
		delete(wanted, name) // a type is described once per executable
		n, err := readMembers(r, want)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		found += n
	}
	if found < len(fields) {
		var missing []string
		for _, fl := range wanted {
			for _, m := range fl {
				missing = append(missing, m.typ+"."+m.member)
			}
		}
		return fmt.Errorf("%w: no DWARF for %v", ErrNoDWARF, missing)
	}
	return nil
}

// readMembers reads the members of the struct whose entry r just returned,
// sets the offsets of those in want and returns how many it set.
func readMembers(r *dwarf.Reader, want []field) (int, error) {
	set := 0
	for {
		e, err := r.Next()
		if err != nil {
			return set, err
		}
		if e == nil || e.Tag == 0 { // end of the struct's children
			break
		}
		if e.Tag != dwarf.TagMember {
			if e.Children {
				r.SkipChildren()
			}
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		for _, fl := range want {
			if fl.member != name {
				continue
			}
			off, ok := e.Val(dwarf.AttrDataMemberLoc).(int64)
			if !ok {
				return set, fmt.Errorf("member %s has no constant offset", name)
			}
			*fl.offset = uint64(off)
			set++
		}
	}
	if set != len(want) {
		return set, fmt.Errorf("%d of its %d members the probe reads are missing", len(want)-set, len(want))
	}
	return set, nil
}
