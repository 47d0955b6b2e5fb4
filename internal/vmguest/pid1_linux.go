package vmguest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Init prepares a bare initramfs for the tests: it mounts proc, sysfs,
// devtmpfs and a tmpfs on /tmp, and points stdin, stdout and stderr at
// console (e.g. "/dev/ttyS0"), because an initramfs without /dev/console
// starts init with no open files.
func Init(console string) error {
	mounts := []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"}, // t.TempDir
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	fd, err := unix.Open(console, unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", console, err)
	}
	for i := 0; i <= 2; i++ {
		if err := unix.Dup3(fd, i, 0); err != nil && fd != i {
			return fmt.Errorf("dup %s to fd %d: %w", console, i, err)
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
	return nil
}

// LoadModules loads the kernel modules listed, one file name per line
// relative to dir, in the order of the file dir/order; a line may carry
// module parameters after the name ("vivid.ko n_devs=1"). A module that is
// already loaded (EEXIST) is fine.
func LoadModules(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "order"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var loaded []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, params, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		if err := loadModule(filepath.Join(dir, name), params); err != nil {
			return loaded, err
		}
		loaded = append(loaded, name)
	}
	return loaded, sc.Err()
}

func loadModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), params, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s %q: %w", filepath.Base(path), params, err)
	}
	return nil
}

// WaitFor waits until path exists, polling, or fails after timeout.
func WaitFor(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PowerOff syncs and powers the machine off. It returns only on failure.
func PowerOff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// IfUp gives the network interface name (e.g. "eth0") the IPv4 address
// and prefix of addr and brings it up, with ioctls (no netlink, no ip(8)
// in the initramfs). Under qemu's user networking the guest is
// 10.0.2.15/24 and the host's loopback is 10.0.2.2, on-link: no route is
// needed to reach it.
func IfUp(name string, addr netip.Prefix) error {
	if !addr.Addr().Is4() {
		return fmt.Errorf("ifup %s: %v is not IPv4", name, addr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ifup %s: %w", name, err)
	}
	defer unix.Close(fd)
	set := func(req uint, what string, fill func(*unix.Ifreq) error) error {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return fmt.Errorf("ifup %s: %w", name, err)
		}
		if err := fill(ifr); err != nil {
			return fmt.Errorf("ifup %s: %s: %w", name, what, err)
		}
		if err := unix.IoctlIfreq(fd, req, ifr); err != nil {
			return fmt.Errorf("ifup %s: %s: %w", name, what, err)
		}
		return nil
	}
	mask := net.CIDRMask(addr.Bits(), 32)
	if err := set(unix.SIOCSIFADDR, "address", func(r *unix.Ifreq) error { return r.SetInet4Addr(addr.Addr().AsSlice()) }); err != nil {
		return err
	}
	if err := set(unix.SIOCSIFNETMASK, "netmask", func(r *unix.Ifreq) error { return r.SetInet4Addr(mask) }); err != nil {
		return err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("ifup %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("ifup %s: flags: %w", name, err)
	}
	flags := ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING
	return set(unix.SIOCSIFFLAGS, "up", func(r *unix.Ifreq) error { r.SetUint16(flags); return nil })
}
