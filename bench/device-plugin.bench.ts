/**
 * Device plugin benchmarks (run through bench/device-plugin.mjs, which bundles this file and the
 * daemon). Figures, each printed with its goal:
 *   discovery of 1,024 VFs over 8 PFs (generated tree)      <= 1 s
 *   Allocate p99 (fake kubelet -> daemon over gRPC)          <= 5 ms
 *   health event -> ListAndWatch update                      <= 1 s
 *   daemon RSS (separate process, 1,024 VFs, registered)     <= 100 MB
 * argv: <daemon.js>
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DevicePluginDaemon } from '../device-plugin/daemon';
import { discover } from '../device-plugin/discovery';
import { silentLogger } from '../src/log';
import { FakeKubelet } from '../test/fakes/kubelet';
import { setNumVfs, writeSysfsTree, type PfSpec } from '../test/fixtures/sysfs-tree';

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

function tree(root: string, pfs: number, vfsPerPf: number): PfSpec[] {
  const specs: PfSpec[] = Array.from({ length: pfs }, (_, i) => ({
    pciAddr: `0000:${hex2(0x81 + i)}:00.0`,
    netdev: `dbp${i}`,
    numaNode: i % 2,
    totalVfs: vfsPerPf,
    vfs: Array.from({ length: vfsPerPf }, (_, j) => ({
      pciAddr: `0000:${hex2(0x81 + i)}:${hex2(0x10 + Math.floor(j / 8))}.${j % 8}`,
      netdev: `dbp${i}v${j}`,
    })),
  }));
  writeSysfsTree(root, specs);
  return specs;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const fmt = (n: number) => n.toFixed(n < 10 ? 3 : 1);

function report(figure: string, value: string, goal: string, ok: boolean, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ bench: 'device-plugin', figure, value, goal, meetsGoal: ok, ...extra }));
}

async function main(): Promise<void> {
  const daemonJs = process.argv[2];
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'dpb-'));
  try {
    const sysfs = path.join(base, 'sys');
    const specs = tree(sysfs, 8, 128);

    // 1. Discovery.
    const times: number[] = [];
    let count = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      count = discover(sysfs).vfs.length;
      times.push(performance.now() - t0);
    }
    report('discovery of 1,024 VFs over 8 PFs', `${fmt(times[0]!)} ms first, ${fmt(pct(times, 50))} ms median`, '<= 1000 ms', times[0]! <= 1000, { vfs: count });

    // 2 + 3. In-process daemon with the fake kubelet.
    const cfgDir = path.join(base, 'cfg');
    fs.mkdirSync(cfgDir);
    const cfg = path.join(cfgDir, 'pools.yaml');
    fs.writeFileSync(cfg, 'resourceList:\n  - resourceName: bench\n');
    const kubelet = new FakeKubelet(path.join(base, 'k'), 'legacy');
    await kubelet.start();
    const daemon = new DevicePluginDaemon({
      kubeletDir: kubelet.dir,
      sysfsRoot: sysfs,
      configPath: cfg,
      devinfoDir: path.join(base, 'devinfo'),
      registrationMode: 'legacy',
      log: silentLogger(),
    });
    await daemon.start();
    const R = 'sriov-underlay.io/bench';
    await kubelet.waitFor('1024 devices', () => kubelet.devices(R)?.length === 1024, 30_000);
    const ids = kubelet.devices(R)!.map((d) => d.ID);
    const lat: number[] = [];
    for (let i = 0; i < 600; i++) {
      const t0 = performance.now();
      await kubelet.rawAllocate(R, { container_requests: [{ devices_ids: [ids[i % ids.length]!] }] });
      lat.push(performance.now() - t0);
    }
    const warm = lat.slice(100);
    // The in-daemon share of it, from the daemon's own histogram (handler time only).
    const hist = (await daemon.metrics.allocateSeconds.get()).values.filter((v) => v.metricName?.endsWith('_bucket'));
    const total = hist.find((v) => (v.labels as Record<string, unknown>).le === '+Inf')?.value ?? 0;
    const le = (b: number) => hist.find((v) => (v.labels as Record<string, unknown>).le === b)?.value ?? 0;
    const load = os.loadavg()[0]!.toFixed(2);
    report('Allocate p99 (1 VF, fake kubelet -> daemon gRPC round trip incl. device-info file)', `${fmt(pct(warm, 99))} ms`, '<= 5 ms', pct(warm, 99) <= 5, {
      p50: fmt(pct(warm, 50)),
      samples: warm.length,
      handlerUnder1ms: `${((100 * le(0.001)) / total).toFixed(1)}%`,
      handlerUnder5ms: `${((100 * le(0.005)) / total).toFixed(1)}%`,
      loadavg1m: load,
    });

    // Health event: PF carrier needs src/netlink; until then the measured event is sriov_numvfs
    // (sysfs change -> rescan -> ListAndWatch), which has the same push path after detection.
    const ev: number[] = [];
    const pf = specs[7]!; // the last PF: none of its VFs was allocated above
    for (let i = 0; i < 6; i++) {
      const want = i % 2 === 0 ? 1024 - 64 : 1024;
      const before = kubelet.plugins.get(R)!.updates;
      const t0 = performance.now();
      setNumVfs(sysfs, pf, i % 2 === 0 ? 64 : 128);
      await kubelet.waitFor('update', () => kubelet.plugins.get(R)!.updates > before && kubelet.devices(R)?.length === want, 10_000);
      ev.push(performance.now() - t0);
    }
    report('health event -> ListAndWatch update (sriov_numvfs 128 <-> 64 on one PF)', `${fmt(pct(ev, 50))} ms median, ${fmt(Math.max(...ev))} ms max`, '<= 1000 ms', Math.max(...ev) <= 1000, {
      note: 'PF carrier events need src/netlink (not merged yet); this measures the rescan path',
    });
    await daemon.stop();
    await kubelet.stop();

    // 4. RSS of the real daemon process.
    if (daemonJs) {
      const k2 = new FakeKubelet(path.join(base, 'k2'), 'legacy');
      await k2.start();
      const env = { ...process.env };
      delete env.NODE_EXTRA_CA_CERTS;
      const child = spawn(process.execPath, [daemonJs, '--kubelet-dir', k2.dir, '--sysfs-root', sysfs, '--config', cfg, '--devinfo-dir', path.join(base, 'devinfo2'), '--metrics-address', '127.0.0.1:0', '--log-level', 'error'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
      try {
        await k2.waitFor('daemon registered', () => k2.devices(R)?.length === 1024, 30_000);
        for (let i = 0; i < 200; i++) await k2.rawAllocate(R, { container_requests: [{ devices_ids: [ids[i]!] }] });
        await new Promise((r) => setTimeout(r, 1500));
        const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
        const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
        report('daemon RSS (1,024 VFs, registered, after 200 Allocates)', `${fmt(rssKb / 1024)} MB (peak ${fmt(hwmKb / 1024)} MB)`, '<= 100 MB', hwmKb / 1024 <= 100);
      } finally {
        child.kill('SIGTERM');
        await k2.stop();
      }
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
