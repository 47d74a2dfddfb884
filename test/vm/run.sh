#!/usr/bin/env bash
# The VM tier: boot Debian's kernel under QEMU (TCG) with an emulated Intel 82576 (igb, SR-IOV) and
# run scenarios against the real igb/igbvf drivers, in one boot.
#
#   bash test/vm/run.sh [--shell] [--list] [scenario...]
#
# No scenario = all of test/vm/scenarios/*.ts. Prints one TAP-like line per assertion
# (`ok - ...` / `not ok - ...: why` / `# SKIP ...`), then the summary line `N passed, N failed`,
# and exits 0 only when nothing failed, the VM did not crash and nothing timed out.
# See docs/testing.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VM_DIR=${SRIOV_VM_DIR:-$ROOT/.vm}
CACHE=$VM_DIR/cache
VM_TIMEOUT_SET=${VM_TIMEOUT:-}
VM_TIMEOUT=${VM_TIMEOUT:-720}          # seconds for the whole boot, scenarios included (a safety net)
VM_MEM=${VM_MEM:-2048}
VM_SMP=${VM_SMP:-1}
# The CNI matrix (docs/testing.md): each scenario that execs the CNI runs once per mode, in one boot:
# `server` (the shim forwards to the real CNI server the scenario starts) and `fallback` (server
# down, the shim execs the standalone). VM_CNI_MODES=server (or fallback) runs one.
VM_CNI_MODES=${VM_CNI_MODES:-server fallback}
for m in $VM_CNI_MODES; do [[ $m == server || $m == fallback ]] || { echo "not ok - vm harness: VM_CNI_MODES: $m is not server or fallback"; echo "0 passed, 1 failed"; exit 1; }; done
# Modules to load; their dependencies are resolved from each .ko's own `depends=` and loaded first.
VM_MODULES="igb igbvf 8021q dummy virtio_pci 9pnet_virtio 9p ${VM_EXTRA_MODULES:-}"

say() { echo "# vm: $*"; }
die() { echo "not ok - vm harness: $*"; echo "0 passed, 1 failed"; exit 1; }

mode=run
list_only=0
wanted=()
for a in "$@"; do
  case "$a" in
    --shell) mode=shell ;;
    --list) list_only=1 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $a" ;;
    *) wanted+=("$a") ;;
  esac
done

# ---------------------------------------------------------------- scenarios
all_scenarios() { for f in "$HERE"/scenarios/*.ts; do basename "$f" .ts; done; }
if ((list_only)); then all_scenarios; exit 0; fi
if ((${#wanted[@]} == 0)); then mapfile -t wanted < <(all_scenarios); fi
for s in "${wanted[@]}"; do
  [[ -f $HERE/scenarios/$s.ts ]] || die "no scenario $s (have: $(all_scenarios | tr '\n' ' '))"
done
[[ $(id -u) == 0 ]] || die "must run as root (apt, mknod, QEMU's 9p export of /)"
# A scenario that needs more kernel modules says so on a line of its own: `// vm-modules: vfio-pci`.
# A long scenario adds to the default boot timeout the same way: `// vm-extra-seconds: 540`.
# A scenario that needs an IOMMU (vfio-pci) says `// vm-iommu: virtio`: the boot then gets QEMU's
# virtio-iommu and the kernel of `<codename>-backports` (Debian 12's own kernel has neither
# CONFIG_VIRTIO_IOMMU nor vfio's no-IOMMU mode). Every scenario of that boot runs on that kernel.
# VM_IOMMU set in the environment (even empty: none) wins over the headers.
if [[ -z ${VM_IOMMU+set} ]]; then
  VM_IOMMU=
  for s in "${wanted[@]}"; do
    if grep '^// vm-iommu: *virtio' "$HERE/scenarios/$s.ts" >/dev/null; then VM_IOMMU=virtio; fi
  done
fi
if [[ $VM_IOMMU == virtio ]]; then VM_MODULES+=" virtio_iommu"; fi
VM_KERNEL_SUITE=${VM_KERNEL_SUITE:-$([[ $VM_IOMMU == virtio ]] && echo backports || echo stock)}
# The guest runs the host's userland (read-only): a scenario that needs more Debian programs names
# their packages, installed on the host before the boot (`// vm-apt: containerd runc`), and the
# empty dirs it mounts tmpfs on, which the guest cannot create (`// vm-mountpoints: /opt/cni/bin`).
VM_APT=() VM_MOUNTPOINTS=()
for s in "${wanted[@]}"; do
  VM_APT+=($(sed -n 's|^// vm-apt: *||p' "$HERE/scenarios/$s.ts"))
  VM_MOUNTPOINTS+=($(sed -n 's|^// vm-mountpoints: *||p' "$HERE/scenarios/$s.ts"))
  VM_MODULES+=" $(sed -n 's|^// vm-modules: *||p' "$HERE/scenarios/$s.ts" | tr '\n' ' ')"
  extra=$(sed -n 's|^// vm-extra-seconds: *\([0-9]*\).*|\1|p' "$HERE/scenarios/$s.ts" | head -1)
  if [[ -z ${VM_TIMEOUT_SET:-} && -n $extra ]]; then VM_TIMEOUT=$((VM_TIMEOUT + extra)); fi
done

# ---------------------------------------------------------------- host dependencies
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
apt_updated=0
apt_update() { ((apt_updated)) || { say "apt-get update"; apt-get update -qq >/dev/null; apt_updated=1; }; }

qemu_has_igb() {
  # grep without -q: -q would exit early, SIGPIPE the producer and fail the pipe under pipefail.
  command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 -device help 2>/dev/null | grep '"igb"' >/dev/null
}

# Enable <codename>-backports by copying this machine's own Debian entry (so the mirror stays the
# one the machine already uses) and changing the suite. Idempotent.
add_backports() {
  if grep -rqsE "^(Suites:.*[[:space:]]|deb .*[[:space:]])${codename}-backports([[:space:]]|$)" \
      /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return
  fi
  local src=/etc/apt/sources.list.d/debian.sources dst=/etc/apt/sources.list.d/${codename}-backports.sources
  if [[ -f $src ]]; then
    # The first deb822 stanza whose Suites has the bare codename; replace its Suites line.
    awk -v RS= -v c="$codename" -v s="${codename}-backports" '
      !done && /(^|\n)Types:[^\n]*deb([ \t\n]|$)/ && match($0, /(^|\n)Suites:[^\n]*/) {
        line = substr($0, RSTART, RLENGTH); n = split(line, w, /[ \t\n]+/); hit = 0
        for (i = 1; i <= n; i++) if (w[i] == c) hit = 1
        if (hit) { sub(/(^|\n)Suites:[^\n]*/, "\nSuites: " s); sub(/^\n/, ""); print; done = 1 }
      }' "$src" > "$dst.tmp"
  else
    grep -hE "^deb [^#]*[[:space:]]${codename}[[:space:]]" /etc/apt/sources.list | head -1 \
      | sed -E "s/[[:space:]]${codename}[[:space:]]/ ${codename}-backports /" > "$dst.tmp"
    dst=${dst%.sources}.list
  fi
  [[ -s $dst.tmp ]] || { rm -f "$dst.tmp"; die "cannot derive a ${codename}-backports entry from the apt sources"; }
  mv "$dst.tmp" "$dst"
  say "added $dst"
  apt_updated=0
}

ensure_host_deps() {
  local pkgs=()
  command -v busybox >/dev/null && busybox --list 2>/dev/null | grep -x cpio >/dev/null || pkgs+=(busybox-static)
  [[ -x /usr/lib/cni/static ]] || pkgs+=(containernetworking-plugins)
  [[ -x /usr/sbin/ip || -x /sbin/ip || -x /bin/ip ]] || pkgs+=(iproute2)
  command -v gzip >/dev/null || pkgs+=(gzip)
  command -v xz >/dev/null || pkgs+=(xz-utils) # newer kernels' modules are .ko.xz
  local p
  for p in "${VM_APT[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
  done
  if ((${#pkgs[@]})); then
    apt_update
    say "apt-get install ${pkgs[*]}"
    # Packages for the guest only (containerd): their services must not start on this host. Debian's
    # policy-rc.d says so to invoke-rc.d and deb-systemd-invoke, for the install only.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 0755 "$policy"; own_policy=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null || { ((own_policy)) && rm -f "$policy"; die "apt-get install ${pkgs[*]} failed"; }
    ((own_policy)) && rm -f "$policy"
  fi
  if ! qemu_has_igb; then
    add_backports
    apt_update
    say "apt-get install -t ${codename}-backports qemu-system-x86 (QEMU with -device igb)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t "${codename}-backports" qemu-system-x86 >/dev/null
    qemu_has_igb || die "qemu-system-x86_64 has no igb device even after installing from ${codename}-backports"
  fi
  for p in "${VM_MOUNTPOINTS[@]}"; do [[ $p == /* && -d $p ]] || mkdir -p "$p" || die "cannot create mount point $p"; done
  # busybox must be static: it is PID 1 in an initramfs with no libc.
  BUSYBOX=/bin/busybox
  [[ -x $BUSYBOX ]] || BUSYBOX=$(command -v busybox)
  if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked; install busybox-static"; fi
}

# ---------------------------------------------------------------- kernel (cached per version)
ensure_kernel() {
  local kpkg kver apt_opts=()
  if [[ $VM_KERNEL_SUITE == backports ]]; then
    # The backports kernel: the same source add_backports gives QEMU; -t makes it the candidate.
    add_backports
    apt_opts=(-t "${codename}-backports")
    apt-cache policy linux-image-amd64 2>/dev/null | grep -- "${codename}-backports" >/dev/null || apt_update
  fi
  kpkg=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ && !f {print $2; f = 1}')
  if [[ -z $kpkg ]]; then
    apt_update
    kpkg=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ && !f {print $2; f = 1}')
  fi
  [[ -n $kpkg ]] && kver=$(apt-cache "${apt_opts[@]}" policy "$kpkg" | awk '/Candidate:/ {print $2}')
  if [[ -z ${kver:-} || $kver == "(none)" ]]; then
    # Offline: fall back to the newest kernel already cached (of the suite asked for).
    KDIR=$(ls -d "$CACHE"/linux-image-*/ 2>/dev/null | if [[ $VM_KERNEL_SUITE == backports ]]; then grep bpo; else grep -v bpo; fi | sort -V | tail -1 || true)
    [[ -n $KDIR && -f $KDIR/.complete ]] || die "cannot resolve linux-image-amd64 and no cached kernel"
    KDIR=${KDIR%/}
    return
  fi
  KDIR=$CACHE/${kpkg}_${kver}
  [[ -f $KDIR/.complete ]] && return
  say "downloading $kpkg $kver (once; cached in ${KDIR#"$ROOT"/})"
  rm -rf "$KDIR"; mkdir -p "$KDIR/dl"
  (cd "$KDIR/dl" && apt-get "${apt_opts[@]}" download -qq "$kpkg=$kver" 2>&1 | grep -v 'unsandboxed' || true)
  local deb; deb=$(ls "$KDIR"/dl/*.deb 2>/dev/null | head -1)
  [[ -n $deb ]] || die "apt-get download $kpkg=$kver produced no .deb"
  dpkg -x "$deb" "$KDIR/root"
  rm -rf "$KDIR/dl"
  touch "$KDIR/.complete"
}

# ---------------------------------------------------------------- initramfs
modcat() { if [[ $1 == *.xz ]]; then xz -dc "$1"; else cat "$1"; fi; }
build_initramfs() {
  local stage=$RUN/initramfs modroot vmlinuz
  modroot=$(ls -d "$KDIR"/root/lib/modules/*/ | head -1)
  vmlinuz=$(ls "$KDIR"/root/boot/vmlinuz-* | head -1)
  VMLINUZ=$vmlinuz
  declare -gA MODPATH=() SEEN=()
  local p n
  # Newer kernels ship modules xz-compressed (.ko.xz); busybox insmod wants them plain.
  while read -r p; do n=${p##*/}; n=${n%.xz}; n=${n%.ko}; MODPATH[${n//-/_}]=$p; done < <(find "$modroot" -name '*.ko' -o -name '*.ko.xz')
  ORDER=()
  visit() {
    local n=${1//-/_} p deps d
    [[ -n ${SEEN[$n]:-} ]] && return 0
    SEEN[$n]=1
    p=${MODPATH[$n]:-}
    if [[ -z $p ]]; then
      grep -q "/${n}.ko$" "$modroot/modules.builtin" 2>/dev/null && return 0
      die "kernel module $1 not found in $(basename "$KDIR")"
    fi
    deps=$(modcat "$p" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do visit "$d"; done
    ORDER+=("$n")
  }
  local m
  for m in $VM_MODULES; do visit "$m"; done
  mkdir -p "$stage"/{bin,lib/modules,proc,sys,dev,host}
  cp "$BUSYBOX" "$stage/bin/busybox"
  install -m 0755 "$HERE/guest/init.sh" "$stage/init"
  mknod -m 0600 "$stage/dev/console" c 5 1
  for n in "${ORDER[@]}"; do modcat "${MODPATH[$n]}" > "$stage/lib/modules/$n.ko"; echo "$n"; done > "$stage/modules.order"
  (cd "$stage" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) | gzip -1 > "$RUN/initrd.gz"
}

# ---------------------------------------------------------------- project artefacts
scenario_requires() { sed -n 's|^// vm-requires: *||p' "$HERE/scenarios/$1.ts"; }

ensure_project() {
  [[ -d $ROOT/node_modules/esbuild ]] || { say "npm ci"; (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null); }
  # Build (incrementally) the executables the chosen scenarios need, so a standalone run never tests
  # a stale binary. VM_NO_BUILD=1 uses dist/ as it is (scripts/test-all.sh has just built it).
  # A scenario that requires the image (`// vm-requires: dist/image/...`) gets the whole build and
  # `npm run image` (scripts/image.mjs), so it never runs a stale image either.
  local targets=() s r image=0
  for s in "${wanted[@]}"; do
    for r in $(scenario_requires "$s"); do
      [[ $r == dist/bin/* ]] && [[ " ${targets[*]} " != *" ${r#dist/bin/} "* ]] && targets+=("${r#dist/bin/}")
      [[ $r == dist/image/* ]] && image=1
    done
  done
  BUILD_FAILED=0
  ((${#targets[@]} || image)) || return 0
  [[ -f $ROOT/scripts/build.mjs && ${VM_NO_BUILD:-0} != 1 ]] || return 0
  local list; list=$(IFS=,; echo "${targets[*]}")
  local build=(npm run build); ((image)) || build+=(-- --only "$list")
  say "${build[*]}"
  if ! (cd "$ROOT" && "${build[@]}" >"$RUN/build.log" 2>&1); then
    echo "not ok - vm: ${build[*]} failed, see ${RUN}/build.log"
    tail -n 15 "$RUN/build.log" | sed 's/^/#   /'
    BUILD_FAILED=1
  elif ((image)); then
    say "npm run image"
    if ! (cd "$ROOT" && node scripts/image.mjs >>"$RUN/build.log" 2>&1); then
      echo "not ok - vm: npm run image failed, see ${RUN}/build.log"
      tail -n 15 "$RUN/build.log" | sed 's/^/#   /'
      BUILD_FAILED=1
    fi
  fi
}

bundle_guest_code() {
  local entries=("$HERE/guest/main.ts" "$HERE/guest/run-one.ts") s
  for s in "${RUNNABLE[@]}"; do entries+=("$HERE/scenarios/$s.ts"); done
  "$ROOT/node_modules/.bin/esbuild" "${entries[@]}" --bundle --platform=node --target=node20 \
    --format=cjs --outbase="$HERE" --outdir="$RUN/build" --log-level=warning \
    || die "esbuild could not bundle the guest code"
}

# ---------------------------------------------------------------- main
mkdir -p "$CACHE" "$VM_DIR/runs"
RUN=$VM_DIR/runs/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$RUN/out"
# Keep the last few runs for post-mortems.
ls -dt "$VM_DIR"/runs/*/ 2>/dev/null | tail -n +6 | xargs -r rm -rf

t0=$(date +%s)
exec 9>"$CACHE/.lock"; flock 9     # one kernel download / unpack at a time
ensure_host_deps
ensure_kernel
flock -u 9
build_initramfs
ensure_project

RUNNABLE=() SKIPPED=0
for s in "${wanted[@]}"; do
  missing=""
  for r in $(scenario_requires "$s"); do [[ -e $ROOT/$r ]] || missing+=" $r"; done
  if [[ -n $missing ]]; then
    if [[ $missing == " dist/bin/sriov-underlay-cni" ]]; then
      echo "# SKIP $s: cni not built (dist/bin/sriov-underlay-cni is absent)"
    else
      echo "# SKIP $s: not built:$missing"
    fi
    SKIPPED=$((SKIPPED + 1))
  else
    RUNNABLE+=("$s")
  fi
done
bundle_guest_code

{
  echo "{\"project\": \"$ROOT\", \"out\": \"/run/vmout\", \"scenarios\": ["
  sep=""
  for s in "${RUNNABLE[@]}"; do
    if scenario_requires "$s" | grep -qx 'dist/bin/sriov-underlay'; then
      # A scenario may run in fewer modes (`// vm-cni-modes: fallback`: cri-runtime starts no server).
      only=$(sed -n 's|^// vm-cni-modes: *||p' "$HERE/scenarios/$s.ts" | head -1)
      for m in $VM_CNI_MODES; do
        [[ -z $only || " $only " == *" $m "* ]] || { echo "# SKIP $s[$m]: the scenario runs only in: $only" >&2; continue; }
        echo "$sep{\"name\": \"$s\", \"file\": \"$RUN/build/scenarios/$s.js\", \"cniMode\": \"$m\"}"; sep=","
      done
    else
      echo "$sep{\"name\": \"$s\", \"file\": \"$RUN/build/scenarios/$s.js\"}"; sep=","
    fi
  done
  echo "]}"
} > "$RUN/out/job.json"
echo "$mode" > "$RUN/out/mode"
echo "$RUN/build/guest/main.js" > "$RUN/out/guest-main"
echo "VM_JOB=/run/vmout/job.json VM_OUT=/run/vmout VM_PROJECT=$ROOT" > "$RUN/out/guest-env"
: > "$RUN/out/results.tap"
t_prep=$(($(date +%s) - t0))
say "prepared in ${t_prep}s ($(basename "$KDIR"), ${#RUNNABLE[@]} scenario(s)); booting (TCG)"

# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can miss its window and
# panic ("IO-APIC + timer doesn't work!"), seen with the 6.12 kernel while other jobs ran.
qemu=(qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m "$VM_MEM" -smp "$VM_SMP"
  -nographic -no-reboot
  -kernel "$VMLINUZ" -initrd "$RUN/initrd.gz" -append "console=ttyS0 panic=-1 quiet no_timer_check sriov_project=$ROOT"
  -device pcie-root-port,id=rp1,slot=1
  -netdev user,id=n0,restrict=on -device igb,bus=rp1,netdev=n0
  -fsdev local,id=fshost,path=/,security_model=none,readonly=on,multidevs=remap
  -device virtio-9p-pci,fsdev=fshost,mount_tag=host
  -fsdev local,id=fsout,path="$RUN/out",security_model=none
  -device virtio-9p-pci,fsdev=fsout,mount_tag=out)
# An IOMMU for vfio-pci: QEMU's virtio-iommu (found through the ACPI VIOT table; the kernel needs
# CONFIG_VIRTIO_IOMMU). QEMU's intel-iommu is no good here: enabling igb VFs behind it hung under TCG.
if [[ $VM_IOMMU == virtio ]]; then qemu+=(-device virtio-iommu-pci); fi

if [[ $mode == shell ]]; then
  say "shell mode: scenarios are bundled in ${RUN}/build; run one with"
  say "  node $RUN/build/guest/run-one.js $RUN/build/scenarios/<name>.js   (from the project dir)"
  say "QEMU console: Ctrl-A X quits"
  exec "${qemu[@]}"
fi

t_boot=$(date +%s)
timeout --kill-after=10 "$VM_TIMEOUT" "${qemu[@]}" </dev/null >"$RUN/console.log" 2>&1 &
qpid=$!
tail -n +1 -F --pid="$qpid" "$RUN/out/results.tap" 2>/dev/null || true
set +e; wait "$qpid"; qrc=$?; set -e
t_vm=$(($(date +%s) - t_boot))

passed=$(grep -c '^ok ' "$RUN/out/results.tap" || true)
failed=$(grep -c '^not ok ' "$RUN/out/results.tap" || true)
failed=$((failed + BUILD_FAILED))
vm_broke=1
if ((qrc == 124 || qrc == 137)); then
  echo "not ok - vm: timed out after ${VM_TIMEOUT}s (VM_TIMEOUT)"
elif ! grep -q '^# guest done' "$RUN/out/results.tap"; then
  echo "not ok - vm: the guest stopped before finishing (qemu exit $qrc)"
elif ((qrc != 0)); then
  echo "not ok - vm: qemu exited with $qrc"
else
  vm_broke=0
fi
failed=$((failed + vm_broke))
if ((vm_broke)); then
  echo "# console tail (${RUN}/console.log):"
  grep -v '^$' "$RUN/console.log" | tail -n 25 | sed 's/^/#   /'
fi
boot_line=$(grep -o 'ready after [0-9.]*s uptime' "$RUN/console.log" | head -1 || true)
say "VM ${t_vm}s (${boot_line:-no boot line}), total $(($(date +%s) - t0))s, ${SKIPPED} skipped; logs in ${RUN}"
echo "$passed passed, $failed failed"
((failed == 0))
