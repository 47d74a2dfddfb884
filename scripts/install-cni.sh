#!/bin/sh
# Init container: install the CNI executable (and, optionally, the primary-network conflist) on the
# host. Copy to a temp name and rename, so kubelet never executes a half-written plugin.
set -eu
BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}
CONF_DIR=${CNI_CONF_DIR:-/host/etc/cni/net.d}
SRC=/opt/sriov-underlay
mkdir -p "$BIN_DIR"
cp "$SRC/bin/sriov-underlay" "$BIN_DIR/.sriov-underlay.new"
chmod 0755 "$BIN_DIR/.sriov-underlay.new"
mv -f "$BIN_DIR/.sriov-underlay.new" "$BIN_DIR/sriov-underlay"
echo "installed $BIN_DIR/sriov-underlay"
if [ "${INSTALL_CONFLIST:-false}" = "true" ]; then
  mkdir -p "$CONF_DIR"
  cp "$SRC/conf/10-sriov-underlay.conflist" "$CONF_DIR/.10-sriov-underlay.conflist.new"
  mv -f "$CONF_DIR/.10-sriov-underlay.conflist.new" "$CONF_DIR/10-sriov-underlay.conflist"
  echo "installed $CONF_DIR/10-sriov-underlay.conflist"
fi
