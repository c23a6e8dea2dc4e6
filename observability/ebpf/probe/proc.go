package probe

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FindProcesses scans /proc for the processes to watch: those whose
// executable is named in names — by its file name ("gateway"), or by its
// absolute path ("/srv/bin/gateway"), which leaves out another copy of the
// program elsewhere — and those whose PID is in pids. It returns their
// names (the executable's file name) by PID, without the calling process.
func FindProcesses(names []string, pids []int) (map[uint32]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan /proc: %w", err)
	}
	self := os.Getpid()
	found := make(map[uint32]string)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		exe := executablePath(pid)
		if exe == "" { // a kernel thread, or gone
			continue
		}
		if named(names, exe) || slices.Contains(pids, pid) {
			found[uint32(pid)] = filepath.Base(exe)
		}
	}
	return found, nil
}

// named reports whether the executable at path exe is one of names: a
// file name matches any executable of that name, an absolute path only
// that file.
func named(names []string, exe string) bool {
	return slices.ContainsFunc(names, func(name string) bool {
		if filepath.IsAbs(name) {
			return filepath.Clean(name) == exe
		}
		return name == filepath.Base(exe)
	})
}

// executablePath is the path of the process's executable, "" if it has none
// or exited.
func executablePath(pid int) string {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	// The file was replaced or removed while the process runs.
	return strings.TrimSuffix(exe, " (deleted)")
}

// listeningPorts lists the local ports of the TCP sockets pid listens on.
func listeningPorts(pid uint32) ([]uint16, error) {
	byInode := make(map[string]uint16)
	for _, table := range []string{"tcp", "tcp6"} {
		if err := readListeners(fmt.Sprintf("/proc/%d/net/%s", pid, table), byInode); err != nil {
			return nil, err
		}
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	var ports []uint16
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		inode, ok := strings.CutPrefix(target, "socket:[")
		if !ok {
			continue
		}
		if port, ok := byInode[strings.TrimSuffix(inode, "]")]; ok {
			ports = append(ports, port)
		}
	}
	return ports, nil
}

// readListeners adds the listening sockets of a /proc/net/tcp{,6} table
// to byInode.
func readListeners(path string, byInode map[string]uint16) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		cols := strings.Fields(sc.Text())
		const listen = "0A"
		if len(cols) < 10 || cols[3] != listen {
			continue
		}
		_, portHex, ok := strings.Cut(cols[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil {
			return fmt.Errorf("%s: local address %q: %w", path, cols[1], err)
		}
		byInode[cols[9]] = uint16(port)
	}
	return sc.Err()
}
