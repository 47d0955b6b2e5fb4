#!/usr/bin/env bash
# Test the V4L2 camera driver against a real V4L2 driver: the kernel's
# vivid module, in a qemu VM under software emulation (no KVM needed).
#
#   1. compile hal/v4l2/vmtest's tests (build tag "vivid") as a static binary;
#   2. pack it as /init with vivid.ko and its dependencies (from modules.dep
#      of Debian's kernel, decompressed if needed) into an initramfs (cpio);
#   3. boot /boot/vmlinuz-* with it; the tests run as PID 1, print
#      "PAPSCAN-VIVID-RESULT: PASS|FAIL" on the serial console and power off;
#   4. check the marker.
#
# Needs qemu-system-x86, linux-image-amd64, cpio (scripts/deps.txt). Work
# files go to bin/vm (make clean removes them). Env: VIVID_TIMEOUT (s,
# default 300), VIVID_KERNEL (a vmlinuz path), VIVID_VERBOSE=1 (test -v).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$root/bin/vm
rm -rf "$work" && mkdir -p "$work/initramfs"

. scripts/vm/lib.sh
vm_kernel "${VIVID_KERNEL:-}"
# One vivid instance with one video capture node: /dev/video0.
vm_modules "$work/initramfs/modules" "vivid=n_devs=1 node_types=0x1"
nmods=$(wc -l <"$work/initramfs/modules/order")

CGO_ENABLED=0 go test -c -tags vivid -trimpath -o "$work/initramfs/init" ./hal/v4l2/vmtest
vm_initramfs "$work/initramfs" "$work/initramfs.cpio.gz"

args="-test.timeout=150s"
[ "${VIVID_VERBOSE:-0}" = 1 ] && args="$args -test.v"
echo "vivid: booting $kernel ($(du -h "$work/initramfs.cpio.gz" | cut -f1) initramfs, $nmods modules)"
start=$(date +%s)
set +e
timeout "${VIVID_TIMEOUT:-300}" qemu-system-x86_64 -accel tcg -m 512 -smp 2 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$work/initramfs.cpio.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4 -- $args" </dev/null >"$work/console.log" 2>&1
rc=$?
set -e
tr -d '\r' <"$work/console.log" >"$work/console.txt"
if grep -q '^PAPSCAN-VIVID-RESULT: PASS' "$work/console.txt"; then
  [ "${VIVID_VERBOSE:-0}" = 1 ] && cat "$work/console.txt"
  echo "vivid: PASS in $(($(date +%s) - start))s"
  exit 0
fi
cat "$work/console.txt"
if [ $rc -eq 124 ]; then
  echo "vivid: FAIL: the VM did not finish within ${VIVID_TIMEOUT:-300}s" >&2
else
  echo "vivid: FAIL (qemu exit $rc); console log above, also in $work/console.txt" >&2
fi
exit 1
