#!/usr/bin/env bash
# The whole test suite (`npm test`): typecheck, lint, build, vitest unit, vitest host (root, real
# netns), then the VM tier (test/vm/run.sh). Every tier runs even when an earlier one failed, so one
# run shows everything that is broken. The last line is exactly `N passed, N failed`:
#   - vitest tiers count their tests (from vitest's JSON report, not its text output);
#   - the VM tier counts its scenarios (from its own `N passed, N failed` line);
#   - typecheck, lint and build count as one check each.
# The CNI matrix (docs/testing.md): the host tier runs with the CNI server up
# (SRIOV_UNDERLAY_TEST_CNI=server), then its CNI files again with it down (fallback); the VM tier runs
# its CNI scenarios in both modes in one boot.
# Exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

passed=0
failed=0
summary=()
timings=()
failures=() # "tier: test name" of each failure, printed last so CI's tail names them
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT

tier() { printf '\n==> %s\n' "$1"; }
record() { # name passed failed note
  passed=$((passed + $2))
  failed=$((failed + $3))
  summary+=("$(printf '%-10s %4d passed, %4d failed%s' "$1" "$2" "$3" "${4:+  ($4)}")")
}

# A command whose outcome is one check.
check() { # name command...
  local name=$1
  shift
  tier "$name"
  local rc=0
  "$@" || rc=$?
  if ((rc == 0)); then record "$name" 1 0; else record "$name" 0 1 "exit $rc" && failures+=("$name: exit $rc (its output is above)"); fi
}

# A vitest project; counts come from its JSON reporter. Further arguments go to vitest (file filters,
# --exclude); the summary names the pass `name`.
vitest_tier() { # name project [vitest args...]
  local name=$1 project=$2 json="$reports/$1.json" rc=0 counts t0=$SECONDS
  shift 2
  tier "vitest $name"
  npx vitest run --project "$project" --reporter=default --reporter=json --outputFile.json="$json" "$@" || rc=$?
  timings+=("$(printf '%-14s %5d s' "$name" $((SECONDS - t0)))")
  if ! counts=$(node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      // A file that fails to load has no failed tests but a failed suite: count it as a failure.
      const suites = (r.testResults ?? []).filter((f) => f.status === "failed" && (f.assertionResults ?? []).every((a) => a.status !== "failed")).length;
      console.log(r.numPassedTests ?? 0, (r.numFailedTests ?? 0) + suites, (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0));
      for (const f of r.testResults ?? []) {
        const file = require("path").relative(process.cwd(), f.name);
        const bad = (f.assertionResults ?? []).filter((a) => a.status === "failed");
        if (f.status === "failed" && bad.length === 0) console.log(`${file}: ${String(f.message ?? "failed to load").split("\n")[0].slice(0, 200)}`);
        for (const a of bad) console.log(`${file} > ${a.fullName}: ${String(a.failureMessages?.[0] ?? "").split("\n")[0].slice(0, 200)}`);
      }
    ' "$json" 2>/dev/null); then
    record "$name" 0 1 "no JSON report, vitest exit $rc"
    return
  fi
  read -r p f s <<<"$(head -n 1 <<<"$counts")"
  local line
  while IFS= read -r line; do [[ -n $line ]] && failures+=("$name: $line"); done < <(tail -n +2 <<<"$counts")
  # vitest failed without a failing test (e.g. no test files, a config error): still a failure.
  if ((rc != 0 && f == 0)); then f=1; fi
  record "$name" "$p" "$f" "$( ((s > 0)) && echo "$s skipped")"
}

vm_tier() {
  local t0
  tier "vm"
  if [[ ! -f test/vm/run.sh ]]; then
    printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
    printf '!!! VM TIER SKIPPED: test/vm/run.sh does not exist yet. Real SR-IOV is NOT tested. !!!\n'
    printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
    summary+=("$(printf '%-10s SKIPPED (test/vm/run.sh missing)' vm)")
    return
  fi
  # Two boots. 1: every scenario on Debian 12's own kernel, with no IOMMU (the oracle the CNI
  # scenarios were written against; node-policy there proves vfio-pci is refused and said so).
  # 2: node-policy alone on the backports kernel with QEMU's virtio-iommu (vfio-pci bound and back).
  # One boot for both would run every scenario on the backports kernel, where igbvf refuses a VF-side
  # MAC the demo sets (EADDRNOTAVAIL): kept apart until that is understood.
  # VM_CNI_MODES: every CNI scenario once per mode, in the same boot (run.sh).
  local boot name
  for boot in stock iommu; do
    local log="$reports/vm-$boot.log" rc=0 line
    name="vm-$boot"
    t0=$SECONDS
    if [[ $boot == stock ]]; then
      VM_IOMMU= VM_CNI_MODES=${VM_CNI_MODES:-server fallback} bash test/vm/run.sh 2>&1 | tee "$log" || rc=$?
    else
      VM_IOMMU=virtio VM_CNI_MODES=${VM_CNI_MODES:-server fallback} bash test/vm/run.sh node-policy 2>&1 | tee "$log" || rc=$?
    fi
    timings+=("$(printf '%-14s %5d s' "$name" $((SECONDS - t0)))")
    while IFS= read -r line; do failures+=("$name: ${line:0:240}"); done < <(grep -E '^not ok' "$log")
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [[ -n $line ]]; then
      read -r p _ f _ <<<"$line"
      if ((rc != 0 && f == 0)); then f=1; fi
      record "$name" "$p" "$f" "$( ((rc != 0)) && echo "exit $rc")"
    elif ((rc == 0)); then
      record "$name" 1 0 "no summary line"
    else
      record "$name" 0 1 "exit $rc, no summary line"
    fi
  done
}

# Set-up, so `npm test` alone works on a fresh Debian 12 machine (Node 20, npm, python3, gcc, make):
# the Debian packages the tiers use (qemu-user: test/host/portable.test.ts runs the executables on
# other CPU models; containerd, runc and podman: test/host/image.test.ts loads and runs the image),
# then npm packages when node_modules is missing or older than
# the lock file. Both are skipped quickly when already done. (The VM tier installs QEMU and its
# guest kernel itself.)
tier setup
apt_needed=()
for p in iproute2 iputils-ping strace containernetworking-plugins time binutils qemu-user containerd runc podman; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || apt_needed+=("$p")
done
if ((${#apt_needed[@]})); then
  echo "apt-get install ${apt_needed[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${apt_needed[@]}" >/dev/null
fi
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

check typecheck npx tsc -p tsconfig.json
check lint npx eslint .
check build npm run build --silent
vitest_tier unit unit
# The CNI matrix. Host pass 1: everything, "the CNI" served by the real CNI server (the project's
# global setup starts it). Pass 2: the files that exec the CNI, again with the server down, so the
# shim execs the standalone. cni-faults.test.ts (3 x 200 SIGKILLs of the exec'd process) runs in
# fallback only: with the server up a SIGKILL of the shim does not stop the server's work, and the
# server's own kill matrix (test/host/cni-server/faults.test.ts, server kills at 200 moments of ADD,
# DEL through the fallback) is its counterpart; it runs once, in pass 1 (it starts its own servers).
# (cni-shim and cni-server* drive their own fake or real servers: they run once, in pass 1.)
mapfile -t cni_files < <(ls test/host/cni*.test.ts test/host/registrations-e2e.test.ts test/host/demo.test.ts | grep -v -e /cni-shim -e /cni-server)
SRIOV_UNDERLAY_TEST_CNI=server vitest_tier host-server host --exclude test/host/cni-faults.test.ts
SRIOV_UNDERLAY_TEST_CNI=fallback vitest_tier host-fallback host "${cni_files[@]}"
vm_tier

printf '\n==> time per tier\n'
printf '%s\n' "${timings[@]}"
if ((${#failures[@]})); then
  printf '\n==> failed\n'
  printf '%s\n' "${failures[@]}"
fi
printf '\n==> summary\n'
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
((failed == 0))
