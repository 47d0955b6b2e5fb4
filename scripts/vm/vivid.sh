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
rm -rf "$work" && mkdir -p "$work/initramfs/modules"

kernel=${VIVID_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)}
[ -n "$kernel" ] && [ -r "$kernel" ] || { echo "vivid: no kernel image in /boot (install linux-image-amd64)" >&2; exit 1; }
kver=${kernel##*/vmlinuz-}
moddir=/lib/modules/$kver
[ -r "$moddir/modules.dep" ] || { echo "vivid: $moddir/modules.dep missing for kernel $kver" >&2; exit 1; }

# vivid and its dependencies: modules.dep lists a module's whole dependency
# closure, deepest last; load in reverse.
line=$(grep -E '(^|/)vivid\.ko(\.[a-z]+)?:' "$moddir/modules.dep") ||
  { echo "vivid: kernel $kver has no vivid module" >&2; exit 1; }
read -r -a deps <<<"${line#*:}"
order=()
for ((i = ${#deps[@]} - 1; i >= 0; i--)); do order+=("${deps[i]}"); done
order+=("${line%%:*}")
: >"$work/initramfs/modules/order"
for m in "${order[@]}"; do
  src=$moddir/$m
  name=$(basename "$m")
  case $name in
    *.ko.xz) xz -dc "$src" >"$work/initramfs/modules/${name%.xz}"; name=${name%.xz} ;;
    *.ko.zst) zstd -qdc "$src" >"$work/initramfs/modules/${name%.zst}"; name=${name%.zst} ;;
    *.ko.gz) gzip -dc "$src" >"$work/initramfs/modules/${name%.gz}"; name=${name%.gz} ;;
    *) cp "$src" "$work/initramfs/modules/$name" ;;
  esac
  params=""
  # One instance with one video capture node: /dev/video0.
  [ "$name" = vivid.ko ] && params="n_devs=1 node_types=0x1"
  echo "$name $params" >>"$work/initramfs/modules/order"
done

CGO_ENABLED=0 go test -c -tags vivid -trimpath -o "$work/initramfs/init" ./hal/v4l2/vmtest
(cd "$work/initramfs" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) | gzip -1 >"$work/initramfs.cpio.gz"

args="-test.timeout=150s"
[ "${VIVID_VERBOSE:-0}" = 1 ] && args="$args -test.v"
echo "vivid: booting $kernel ($(du -h "$work/initramfs.cpio.gz" | cut -f1) initramfs, ${#order[@]} modules)"
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
