# Shared by the VM scripts (vivid.sh, powercut.sh): source it.

# vm_kernel [path]: sets kernel, kver and moddir to the given kernel image or
# the newest /boot/vmlinuz-*, and checks that its modules are installed.
vm_kernel() {
  kernel=${1:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)}
  [ -n "$kernel" ] && [ -r "$kernel" ] || { echo "vm: no kernel image in /boot (install linux-image-amd64)" >&2; return 1; }
  kver=${kernel##*/vmlinuz-}
  moddir=/lib/modules/$kver
  [ -r "$moddir/modules.dep" ] || { echo "vm: $moddir/modules.dep missing for kernel $kver" >&2; return 1; }
}

# vm_modules outdir module[=params]...: copies each module (a name such as
# vivid or ext4, "=params" its parameters) and its dependency closure from
# modules.dep into outdir, decompressed, and appends them to outdir/order in
# load order (dependencies first, each once). Needs vm_kernel first.
vm_modules() {
  local out=$1 spec mod params line m name i
  shift
  mkdir -p "$out"
  touch "$out/order"
  for spec in "$@"; do
    mod=${spec%%=*}
    params=""
    [ "$mod" != "$spec" ] && params=${spec#*=}
    # modules.dep lists a module's whole dependency closure, deepest last;
    # load in reverse. Names match with - and _ alike.
    line=$(grep -E "(^|/)${mod//[-_]/[-_]}\.ko(\.[a-z]+)?:" "$moddir/modules.dep") ||
      { echo "vm: kernel $kver has no $mod module" >&2; return 1; }
    local deps order=()
    read -r -a deps <<<"${line#*:}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do order+=("${deps[i]}"); done
    order+=("${line%%:*}")
    for m in "${order[@]}"; do
      name=$(basename "$m")
      name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
      grep -q "^$name\( \|$\)" "$out/order" && continue
      case $m in
        *.ko.xz) xz -dc "$moddir/$m" >"$out/$name" ;;
        *.ko.zst) zstd -qdc "$moddir/$m" >"$out/$name" ;;
        *.ko.gz) gzip -dc "$moddir/$m" >"$out/$name" ;;
        *) cp "$moddir/$m" "$out/$name" ;;
      esac
      if [ "$m" = "${line%%:*}" ] && [ -n "$params" ]; then
        echo "$name $params" >>"$out/order"
      else
        echo "$name" >>"$out/order"
      fi
    done
  done
}

# vm_initramfs dir out.cpio.gz: packs dir (its /init and /modules) as a
# gzipped newc cpio archive owned by root.
vm_initramfs() {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) | gzip -1 >"$2"
}
