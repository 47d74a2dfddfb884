#!/usr/bin/env bash
# `npm run demo` — the README's main command. On a fresh Debian 12 machine (Node 20, npm, python3,
# gcc, make; root) it installs what it needs, builds, and runs the demo:
#   npm run demo            on this host: emulated VFs (real netns, veths, a generated sysfs tree)
#   npm run demo -- --vm    in the VM tier: real SR-IOV VFs (QEMU's 82576, igb/igbvf drivers)
# Every step is idempotent and quick when its work is already done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

vm=0
for arg in "$@"; do
  case $arg in
    --vm) vm=1 ;;
    -h | --help)
      sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "demo: unknown argument $arg (usage: npm run demo [-- --vm])" >&2
      exit 2
      ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: run as root (it creates network namespaces and links)" >&2
  exit 2
fi

say() { printf '==> %s\n' "$*"; }

# 1. Debian packages, only what is missing: iproute2 (ip, netns) and iputils-ping (the connectivity
#    check). No IPAM plugin: the registrations give every demo pod its addresses.
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
if ((${#need[@]})); then
  say "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. npm packages, when node_modules is missing or older than the lock file (npm writes its hidden
#    lock file on every install). SRIOV_DEMO_NO_NPM_CI=1 refuses instead (the host test runs this
#    script from inside vitest, whose node_modules npm ci would delete under it).
stamp=node_modules/.package-lock.json
if [[ -L node_modules ]]; then
  # A link to another checkout's node_modules (parallel worktrees): npm ci here would empty it under
  # every checkout that shares it, and a rebase alone makes the lock file look newer. Leave it.
  [[ -f $stamp && ! package-lock.json -nt $stamp ]] || echo "demo: node_modules is a link to $(readlink node_modules); not running npm ci through it" >&2
elif [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
  if [[ -n ${SRIOV_DEMO_NO_NPM_CI:-} ]]; then
    echo "demo: node_modules is missing or older than package-lock.json: run npm ci" >&2
    exit 2
  fi
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 3. The VM tier builds, boots and runs its `demo` scenario itself.
if ((vm)); then
  say "the demo in the VM tier (real SR-IOV VFs): bash test/vm/run.sh demo"
  exec bash test/vm/run.sh demo
fi

# 4. npm run build (incremental: the executables are re-made only when their inputs changed). Its
#    output is shown only when it fails.
say "npm run build (incremental)"
build_log=$(mktemp)
if ! npm run --silent build >"$build_log" 2>&1; then
  cat "$build_log" >&2
  rm -f "$build_log"
  echo "demo: the build failed" >&2
  exit 1
fi
grep 'dist/bin/' "$build_log" || true
rm -f "$build_log"

# 5. The demo (demo/main.ts, bundled on the fly).
say "demo"
exec node demo/run.mjs
