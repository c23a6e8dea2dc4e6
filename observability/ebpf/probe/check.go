package probe

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

var (
	// ErrMissingCapability: the process may not load BPF programs or open
	// uprobes.
	ErrMissingCapability = errors.New("missing capability")
	// ErrNoBTF: the kernel does not describe its types (CONFIG_DEBUG_INFO_BTF).
	ErrNoBTF = errors.New("no kernel BTF")
	// ErrLockedDown: kernel lockdown forbids BPF programs to read memory.
	ErrLockedDown = errors.New("kernel locked down")
)

// Capability bits of /proc/<pid>/status (linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// System is where Check looks; the zero value is this machine.
type System struct {
	// ReadFile reads a file; nil is os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

// Check says why this process cannot load the probe: an error wrapping
// ErrMissingCapability, ErrNoBTF or ErrLockedDown that names what is
// missing, or nil.
func (s System) Check() error {
	read := s.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	status, err := read("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	caps, err := effectiveCapabilities(string(status))
	if err != nil {
		return err
	}
	has := func(bit uint) bool { return caps&(1<<bit) != 0 }
	if !has(capSysAdmin) && !(has(capBPF) && has(capPerfmon)) {
		var missing []string
		if !has(capBPF) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(capPerfmon) {
			missing = append(missing, "CAP_PERFMON")
		}
		return fmt.Errorf("%w %s (or CAP_SYS_ADMIN): run the probe as root or grant them", ErrMissingCapability, strings.Join(missing, " and "))
	}
	if _, err := read("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("%w at /sys/kernel/btf/vmlinux (a kernel built with CONFIG_DEBUG_INFO_BTF=y is needed): %v", ErrNoBTF, err)
	}
	// Readable only where securityfs is mounted; elsewhere loading tells.
	if mode, err := read("/sys/kernel/security/lockdown"); err == nil && strings.Contains(string(mode), "[confidentiality]") {
		return fmt.Errorf("%w (lockdown=confidentiality): BPF programs may not read process memory", ErrLockedDown)
	}
	return nil
}

// effectiveCapabilities parses the CapEff line of /proc/<pid>/status.
func effectiveCapabilities(status string) (uint64, error) {
	for line := range strings.Lines(status) {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse CapEff %q: %w", strings.TrimSpace(hex), err)
			}
			return caps, nil
		}
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}
