#!/bin/sh
# Init container: install the CNI on the host (docs/packaging.md, "Installing on a node").
#
#   /opt/cni/bin/sriov-underlay-cni   the standalone CNI: a copy of the one executable
#                                     (sriov-underlay-node), which runs the CNI under this name
#   /opt/cni/bin/sriov-underlay       the shim kubelet executes (the CNI type); it forwards to the CNI
#                                     server, or execs sriov-underlay-cni beside it when it cannot
#
# The standalone first, then the shim: a shim never exists without its fallback, and each file is
# written under a temp name and renamed, so kubelet and the shim only ever see a whole file (the
# old one or the new one; a running old copy keeps its inode). A file whose content is already the
# same is not rewritten: the standalone is ~97 MB and this runs on every pod restart.
# Optionally also the primary-network conflist (INSTALL_CONFLIST=true).
set -eu
BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}
CONF_DIR=${CNI_CONF_DIR:-/host/etc/cni/net.d}
SRC=${SRIOV_UNDERLAY_SRC:-/opt/sriov-underlay}

# install_file SRC DIR NAME MODE
install_file() {
  src=$1 dir=$2 name=$3 mode=$4
  dst="$dir/$name"
  tmp="$dir/.$name.new"
  [ -f "$src" ] || { echo "install-cni: $src is missing from the image" >&2; return 1; }
  # A regular file with the same bytes: nothing to do (a link or anything else is replaced).
  if [ -f "$dst" ] && [ ! -L "$dst" ] && cmp -s "$src" "$dst"; then
    chmod "$mode" "$dst"
    echo "unchanged $dst"
    return 0
  fi
  # A temp file an interrupted run left behind is never trusted: start it afresh.
  rm -f "$tmp"
  cp "$src" "$tmp"
  chmod "$mode" "$tmp"
  # On disk before the rename, so a crash never leaves the new name on an empty file.
  sync "$tmp"
  mv -f "$tmp" "$dst"
  echo "installed $dst"
}

mkdir -p "$BIN_DIR"
install_file "$SRC/bin/sriov-underlay-node" "$BIN_DIR" sriov-underlay-cni 0755
install_file "$SRC/bin/sriov-underlay" "$BIN_DIR" sriov-underlay 0755
if [ "${INSTALL_CONFLIST:-false}" = "true" ]; then
  mkdir -p "$CONF_DIR"
  install_file "$SRC/conf/10-sriov-underlay.conflist" "$CONF_DIR" 10-sriov-underlay.conflist 0644
fi
