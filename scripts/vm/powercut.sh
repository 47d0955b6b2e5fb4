#!/usr/bin/env bash
# Power-cut durability test of the robot's outbox and result files
# (issue 15, docs/powercut.md), in a qemu VM under software emulation:
#
#   1. compile telemetry/outbox/powercut's tests (build tag
#      "powercut_guest") as a static binary and pack it as /init with the
#      virtio, ext4 and crc32c modules of Debian's kernel into an initramfs;
#   2. run the host driver (the same package, build tag "powercut"): it
#      makes an ext4 disk image, boots the VM on it POWERCUT_CUTS times and
#      kills qemu with SIGKILL at a random moment after the guest's first
#      committed result, boots it once more to verify, runs e2fsck -fn and
#      checks that every result reported committed is there, sound;
#   3. boot it once more with qemu's user networking (virtio_net): the
#      guest's outbox sender delivers to the fleet side the driver runs on
#      the host (embedded broker, reference receiver, SQLite in
#      bin/vm-powercut/fleet) until the outbox is empty; every committed,
#      unacked result must be in the fleet's store once, intact.
#
# Needs qemu-system-x86, linux-image-amd64, cpio, e2fsprogs
# (scripts/deps.txt). Work files go to bin/vm-powercut (make clean removes
# them): disk.img, the consoles (cuts.txt, verify.txt, deliver.txt),
# the fleet's store (fleet/) and figures.txt.
# Env: POWERCUT_CUTS (default 5), POWERCUT_MAX_DELAY_MS (default 2000),
# POWERCUT_SEED, POWERCUT_CACHE (qemu cache mode, default none),
# POWERCUT_DISK (cut modes used in turn, default kill,drop,half: see
# TestPowerCut), POWERCUT_MOUNT_OPTS (guest ext4 options of the commit
# boots; barrier=0 is the negative control and must FAIL),
# POWERCUT_KERNEL (a vmlinuz path), POWERCUT_TIMEOUT (s, default 1800),
# POWERCUT_FSCK (0: a mount the cut left refused fails the run instead of
# being repaired with e2fsck -p, as the robot's boot should),
# POWERCUT_DELIVER (0: no delivering boot), POWERCUT_DELIVER_WAIT (s the
# guest waits for the fleet's acks, default 600), POWERCUT_FORGE_ACKS=1
# (the guest trusts another key than the fleet's: the negative control of
# the delivery, must FAIL).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$root/bin/vm-powercut
rm -rf "$work" && mkdir -p "$work/initramfs"
for tool in qemu-system-x86_64 mkfs.ext4 e2fsck cpio; do
  command -v "$tool" >/dev/null || { echo "powercut: $tool missing (scripts/deps.sh installs it)" >&2; exit 1; }
done

. scripts/vm/lib.sh
vm_kernel "${POWERCUT_KERNEL:-}"
# crc32c_generic: ext4's metadata checksums ask the crypto API for crc32c,
# which cannot load a module itself without modprobe in the initramfs.
vm_modules "$work/initramfs/modules" virtio_pci virtio_blk crc32c_generic ext4 virtio_net
CGO_ENABLED=0 go test -c -tags powercut_guest -trimpath -ldflags=-s -o "$work/initramfs/init" ./telemetry/outbox/powercut
vm_initramfs "$work/initramfs" "$work/initramfs.cpio.gz"
echo "powercut: $kernel, $(du -h "$work/initramfs.cpio.gz" | cut -f1) initramfs, ${POWERCUT_CUTS:-5} cuts"

start=$(date +%s)
POWERCUT_KERNEL=$kernel POWERCUT_INITRD=$work/initramfs.cpio.gz POWERCUT_WORK=$work \
  go test -tags powercut -count=1 -run '^TestPowerCut$' -v -timeout "${POWERCUT_TIMEOUT:-1800}s" ./telemetry/outbox/powercut |
  grep --line-buffered -v '^=== RUN' || { echo "powercut: FAIL; consoles in $work" >&2; exit 1; }
echo "powercut: PASS in $(($(date +%s) - start))s: $(cat "$work/figures.txt")"
