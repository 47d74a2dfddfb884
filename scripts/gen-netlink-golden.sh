#!/usr/bin/env bash
# Golden vectors for src/netlink's encoders: the exact rtnetlink requests iproute2 sends.
#
# Each operation runs `ip` for real against a veth in a scratch netns under strace, and the bytes
# of the request (the last sendmsg that asks for an ACK) are written to
# test/unit/netlink/golden/<name>.json with the command, the device's ifindex and, for moves, the
# netns fd number iproute2 used. VF operations are refused by veth (EOPNOTSUPP), but the request is
# already on the wire by then, which is all we need.
# Also captures real kernel replies (link, addresses, routes) for the decoder tests.
#
# Needs root, iproute2 and strace. Usage: scripts/gen-netlink-golden.sh [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-test/unit/netlink/golden}
EXTRACT=scripts/netlink-golden-extract.mjs
SUF=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
NS=nl-gold-$SUF
NS2=nl-gold2-$SUF
A=nlgA$SUF
B=nlgB$SUF
TMP=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; ip netns del "$NS2" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

mkdir -p "$OUT"
rm -f "$OUT"/*.json
ip netns add "$NS"
ip netns add "$NS2"
ip -n "$NS" link add "$A" type veth peer name "$B"
ip -n "$NS" link set "$B" up
IFINDEX=$(ip -n "$NS" -o link show dev "$A" | cut -d: -f1)
IPVER=$(ip -V)

# vec NAME ARGS... : run `ip -n $NS ARGS` under strace and store its ACKed request.
vec() {
  local name=$1; shift
  local log=$TMP/$name.strace
  strace -f -qq -e trace=sendmsg -e write=all -o "$log" ip -n "$NS" "$@" >/dev/null 2>&1 || true
  # NLM_F_ACK (0x4) is in the low byte of nlmsg_flags, byte 6 of the message.
  local hex
  hex=$(node "$EXTRACT" "$log" sendmsg | node -e '
    const lines = require("fs").readFileSync(0, "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
    const acked = lines.filter((m) => parseInt(m.hex.slice(12, 14), 16) & 4);
    if (!acked.length) { console.error("no ACKed request"); process.exit(1); }
    process.stdout.write(acked[acked.length - 1].hex);')
  local cmd="ip $* (with the device name replaced by DEV)"
  cmd=${cmd//$A/DEV}
  cmd=${cmd//$NS2/NETNS}
  node -e '
    const [name, cmd, ifindex, hex, ipver, out] = process.argv.slice(1);
    const buf = Buffer.from(hex, "hex");
    const v = { name, command: cmd, iproute2: ipver, ifindex: Number(ifindex), hex };
    // IFLA_NET_NS_FD (28): record the fd number iproute2 put in the request.
    for (let off = 32; off + 4 <= buf.length; ) {
      const len = buf.readUInt16LE(off), type = buf.readUInt16LE(off + 2);
      if (len < 4) break;
      if (buf.readUInt16LE(4) === 16 && type === 28) v.netnsFd = buf.readUInt32LE(off + 4);
      off += (len + 3) & ~3;
    }
    require("fs").writeFileSync(`${out}/${name}.json`, JSON.stringify(v, null, 2) + "\n");
  ' "$name" "$cmd" "$IFINDEX" "$hex" "$IPVER" "$OUT"
  echo "$name: ${#hex} hex chars"
}

# --- VF attributes (veth refuses them; the request is what matters) ---
vec vf-mac             link set dev "$A" vf 0 mac 02:11:22:33:44:55
vec vf3-mac            link set dev "$A" vf 3 mac 02:aa:bb:cc:dd:ee
vec vf-vlan            link set dev "$A" vf 0 vlan 100
vec vf-vlan-0          link set dev "$A" vf 0 vlan 0
vec vf-vlan-qos        link set dev "$A" vf 0 vlan 100 qos 3
vec vf-vlan-qos-8021ad link set dev "$A" vf 0 vlan 100 qos 3 proto 802.1ad
vec vf-vlan-8021q      link set dev "$A" vf 0 vlan 4094 qos 7 proto 802.1Q
vec vf-spoofchk-on     link set dev "$A" vf 0 spoofchk on
vec vf-spoofchk-off    link set dev "$A" vf 0 spoofchk off
vec vf-trust-on        link set dev "$A" vf 0 trust on
vec vf-trust-off       link set dev "$A" vf 0 trust off
vec vf-state-auto      link set dev "$A" vf 0 state auto
vec vf-state-enable    link set dev "$A" vf 0 state enable
vec vf-state-disable   link set dev "$A" vf 0 state disable
# With only max_tx_rate, iproute2 first reads the VF's current min rate (veth has none, so it
# stops); naming both is the request it then sends, with the current min (0 here).
vec vf-max-tx-rate     link set dev "$A" vf 0 min_tx_rate 0 max_tx_rate 100
vec vf-min-max-tx-rate link set dev "$A" vf 0 min_tx_rate 10 max_tx_rate 100

# --- link ---
vec link-mtu           link set dev "$A" mtu 9000
vec link-address       link set dev "$A" address 02:12:34:56:78:9a
vec link-up            link set dev "$A" up
vec link-down          link set dev "$A" down
vec link-mac-mtu-up    link set dev "$A" address 02:12:34:56:78:9b mtu 1400 up
vec link-name          link set dev "$A" name nlgRenamed
ip -n "$NS" link set dev nlgRenamed name "$A"
vec altname-add        link property add dev "$A" altname nlgAlt0
vec altname-del        link property del dev "$A" altname nlgAlt0

# --- addresses and routes ---
ip -n "$NS" link set dev "$A" up
vec addr-add-v4        address add 10.1.2.3/24 dev "$A"
vec addr-add-v6        address add 2001:db8::5/64 dev "$A"
vec addr-add-v6-nodad  address add 2001:db8::6/64 dev "$A" nodad
vec route-add-v4-gw    route add 10.2.0.0/16 via 10.1.2.1 dev "$A"
vec route-add-v4-link  route add 10.3.0.0/16 dev "$A"
vec route-add-v4-metric route add 10.5.0.0/16 via 10.1.2.1 metric 100 dev "$A"
vec route-add-v4-table route add 10.6.0.0/16 via 10.1.2.1 table 1000 dev "$A"
vec route-add-v4-onlink route add 10.4.0.0/16 via 10.9.9.9 dev "$A" onlink
vec route-add-v6-gw    -6 route add 2001:db8:2::/48 via 2001:db8::1 dev "$A"
vec route-add-v4-default route add default via 10.1.2.1 dev "$A"
vec route-add-v6-default -6 route add default via 2001:db8::1 dev "$A"
vec route-add-v4-default-family -4 route add default via 10.1.2.1 dev "$A"
vec route-add-v4-zero-cidr route add 0.0.0.0/0 via 10.1.2.1 metric 50 dev "$A"

# --- kernel replies for the decoder tests (captured while the state above is live) ---
reply() {
  local name=$1; shift
  local log=$TMP/$name.reply
  strace -f -qq -e trace=recvmsg -e read=all -o "$log" ip -n "$NS" "$@" >/dev/null 2>&1
  node "$EXTRACT" "$log" recvmsg | node -e '
    const [name, cmd, out] = process.argv.slice(1);
    const msgs = require("fs").readFileSync(0, "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
    // iproute2 peeks with an empty buffer first; keep the real reads.
    const replies = msgs.map((m) => m.hex).filter((h) => h.length >= 32);
    require("fs").writeFileSync(`${out}/reply-${name}.json`, JSON.stringify({ name, command: cmd, replies }, null, 2) + "\n");
  ' "$name" "ip $*" "$OUT"
  echo "reply-$name"
}
reply link     -d link show dev "$A"
reply addr     address show dev "$A"
reply route4   -4 route show table all
reply route6   -6 route show table all

vec route-del-v4-gw    route del 10.2.0.0/16 via 10.1.2.1 dev "$A"
vec addr-del-v4        address del 10.1.2.3/24 dev "$A"
vec addr-del-v6        address del 2001:db8::5/64 dev "$A"

# --- moves (last: the device leaves $NS) ---
vec link-netns         link set dev "$A" netns "$NS2"
ip -n "$NS2" link set dev "$A" netns "$NS"
vec link-netns-name    link set dev "$A" netns "$NS2" name eth1
