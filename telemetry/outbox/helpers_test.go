package outbox_test

import (
	"os"
	"os/exec"
	"testing"
)

// mountTmpfs mounts a small tmpfs (a real full disk) and unmounts it at the
// end; it skips when mounting is not permitted (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		t.Skip("a full-disk tmpfs needs root; the injected full disk (TestAdmitFull) still runs")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the injected full disk (TestAdmitFull) still runs", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}
