package probe

import (
	"errors"
	"io/fs"
	"testing"
)

func TestCheck(t *testing.T) {
	const (
		root      = "000001ffffffffff"
		bpfOnly   = "0000008000000000" // CAP_BPF
		bpfPerf   = "000000c000000000" // CAP_BPF, CAP_PERFMON
		sysAdmin  = "0000000000200000" // CAP_SYS_ADMIN
		noCaps    = "0000000000000000"
		integrity = "none [integrity] confidentiality\n"
		secret    = "none integrity [confidentiality]\n"
	)
	tests := []struct {
		name     string
		capEff   string
		btf      bool
		lockdown string // "" : securityfs not mounted
		want     error
		message  string
	}{
		{"root", root, true, integrity, nil, ""},
		{"CAP_BPF and CAP_PERFMON", bpfPerf, true, "", nil, ""},
		{"CAP_SYS_ADMIN", sysAdmin, true, "", nil, ""},
		{"no capabilities", noCaps, true, "", ErrMissingCapability,
			"missing capability CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run the probe as root or grant them"},
		{"CAP_BPF alone", bpfOnly, true, "", ErrMissingCapability,
			"missing capability CAP_PERFMON (or CAP_SYS_ADMIN): run the probe as root or grant them"},
		{"no BTF", root, false, "", ErrNoBTF, ""},
		{"locked down", root, true, secret, ErrLockedDown,
			"kernel locked down (lockdown=confidentiality): BPF programs may not read process memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"/proc/self/status": "Name:\tprobe\nCapInh:\t0000000000000000\nCapEff:\t" + tt.capEff + "\n"}
			if tt.btf {
				files["/sys/kernel/btf/vmlinux"] = "BTF"
			}
			if tt.lockdown != "" {
				files["/sys/kernel/security/lockdown"] = tt.lockdown
			}
			sys := System{ReadFile: func(name string) ([]byte, error) {
				if s, ok := files[name]; ok {
					return []byte(s), nil
				}
				return nil, fs.ErrNotExist
			}}
			err := sys.Check()
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check() = %v, want %v", err, tt.want)
			}
			if tt.message != "" && err.Error() != tt.message {
				t.Errorf("Check() = %q, want %q", err, tt.message)
			}
		})
	}
}
