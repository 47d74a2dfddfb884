#!/bin/busybox sh
# PID 1 of the VM tier's initramfs. Loads the modules run.sh listed, mounts the host's root read-only
# over 9p, gives it fresh proc/sys/dev and tmpfs for the paths a test writes, mounts the writable
# results share, then chroots into the host userland to run the scenarios (or a shell).
/bin/busybox --install -s /bin
export PATH=/bin

log() { echo "vm-init: $*"; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

# Order matters: run.sh wrote dependencies first (dca before igb, netfs before fscache before 9p...).
while read -r mod; do
  insmod "/lib/modules/$mod.ko" || log "insmod $mod failed"
done < /modules.order

mkdir -p /host
# cache=loose: the host tree does not change during a run, and node's binary is read many times.
# Retried for a few seconds: behind a (virtio-)IOMMU the virtio devices' probe is deferred until the
# IOMMU driver is up, and finishes asynchronously after the modules above are loaded.
tries=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 host /host 2>/dev/null; do
  tries=$((tries + 1)); [ $tries -ge 10 ] && break; sleep 1
done
if ! grep -q " /host 9p " /proc/mounts; then
  log "FATAL: cannot mount the host root over 9p"
  poweroff -f
fi
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs tmpfs /host/dev/shm 2>/dev/null
# Everything a scenario, iproute2 or the CNI writes must land on tmpfs: /run (netns, CNI state),
# /var/lib (default CNI state dir), /var/log (default CNI log), /tmp. tmpfs hides what the host has
# there, so the project itself (a CI clone may well live under /tmp) is bind-mounted back on top.
project=$(sed -n 's/.*sriov_project=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$project" ]; then
  mkdir -p /project
  mount -o bind "/host$project" /project
fi
for d in tmp run var/lib var/log; do
  mount -t tmpfs -o mode=0755 tmpfs "/host/$d"
done
chmod 1777 /host/tmp
if [ -n "$project" ] && [ ! -d "/host$project/test/vm" ]; then
  mkdir -p "/host$project"
  mount -o bind /project "/host$project"
fi
mkdir -p /host/run/vmout /host/run/netns
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /host/run/vmout; then
  log "FATAL: cannot mount the results share"
  poweroff -f
fi

ENVP="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=${TERM:-linux}"
mode=$(cat /host/run/vmout/mode 2>/dev/null)
log "ready after $(cut -d' ' -f1 /proc/uptime)s uptime, mode ${mode:-none}"
case "$mode" in
  shell)
    log "interactive shell in the host userland (exit to power off)"
    # cttyhack gives the shell a controlling tty on the serial console (job control, ^C).
    # shellcheck disable=SC2046
    chroot /host /usr/bin/env -i $ENVP $(cat /host/run/vmout/guest-env) \
      /bin/busybox setsid /bin/busybox cttyhack /bin/bash -c 'cd "$VM_PROJECT" && exec /bin/bash -l'
    ;;
  run)
    # shellcheck disable=SC2046
    chroot /host /usr/bin/env -i $ENVP $(cat /host/run/vmout/guest-env) /usr/bin/node "$(cat /host/run/vmout/guest-main)"
    log "guest runner exited with $?"
    ;;
  *)
    log "FATAL: no mode in the results share"
    ;;
esac
sync
umount /host/run/vmout 2>/dev/null
poweroff -f
