// vm-requires: dist/bin/sriov-underlay-node
// vm-modules: vfio-pci
// vm-iommu: virtio
// vm-extra-seconds: 540
/**
 * The node policy on the real igb PF and igbvf VFs: the daemon (`--components
 * node-policy,device-plugin`) creates the VFs before the device plugin first registers, grows them
 * 4 -> 6, holds 6 -> 2 while the fake kubelet has a VF allocated and applies it once freed, sets the
 * PF MTU, binds VF 1 to vfio-pci and back with the device plugin's pools following (the boot has
 * QEMU's virtio-iommu, `vm-iommu` above; without an IOMMU: refused, said so, the VF left alone),
 * applies nothing twice after a restart, never writes for externallyManaged, leaves the
 * node exactly as it was on bad input, and converges after a SIGKILL in the middle of an apply.
 * Checked with sysfs and iproute2 (not our readers) and with what kubelet is told.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FakeKubelet } from '../../fakes/kubelet';
import type { Scenario } from '../lib/scenario';
import { sleep, waitFor } from '../lib/sh';
import { findPf, vfNetdev, vfPci } from '../lib/sriov';

const NET = 'sriov-underlay.io/net';
const DPDK = 'sriov-underlay.io/dpdk';

export const scenario: Scenario = {
  timeoutSec: 600,
  async run({ t, project, outDir, defer }) {
    const pf = await t.step('an igb PF netdev exists', () => findPf());
    const dev = `/sys/class/net/${pf}/device`;
    const numVfs = () => Number(readFileSync(`${dev}/sriov_numvfs`, 'utf8'));
    const total = Number(readFileSync(`${dev}/sriov_totalvfs`, 'utf8'));
    const mtu = () => Number(readFileSync(`/sys/class/net/${pf}/mtu`, 'utf8'));
    const driverOf = (pci: string) => (existsSync(`/sys/bus/pci/devices/${pci}/driver`) ? basename(readlinkSync(`/sys/bus/pci/devices/${pci}/driver`)) : null);
    const ifindexes = () => Array.from({ length: numVfs() }, (_, i) => {
      const n = vfNetdev(vfPci(pf, i));
      return n ? readFileSync(`/sys/class/net/${n}/ifindex`, 'utf8').trim() : `${driverOf(vfPci(pf, i))}`;
    });
    /** What a change would disturb: VF count, each VF's driver and netdev ifindex, the PF's MTU and flags. */
    const snapshot = () => JSON.stringify({ n: numVfs(), drivers: Array.from({ length: numVfs() }, (_, i) => driverOf(vfPci(pf, i))), ifindexes: ifindexes(), mtu: mtu(), flags: readFileSync(`/sys/class/net/${pf}/flags`, 'utf8').trim() });

    const dir = '/run/vmtest/np';
    mkdirSync(join(dir, 'cfg'), { recursive: true });
    mkdirSync(join(dir, 'policy'), { recursive: true });
    const policyFile = join(dir, 'policy', 'policy.yaml');
    let gen = 0;
    const setPolicy = (text: string) => {
      const tmp = join(dir, 'policy', `.tmp${++gen}`);
      writeFileSync(tmp, text);
      renameSync(tmp, policyFile);
    };
    const config = join(dir, 'cfg', 'pools.yaml');
    writeFileSync(config, ['resourceList:', `  - {resourceName: net, selectors: {pfNames: ["${pf}"]}}`, `  - {resourceName: dpdk, deviceType: vfio, selectors: {pfNames: ["${pf}"]}}`, ''].join('\n'));
    const kubelet = new FakeKubelet(join(dir, 'kubelet'), 'legacy');
    await kubelet.start();
    defer(() => kubelet.stop());

    let daemon: ChildProcess | null = null;
    let run = 0;
    const logFile = () => join(outDir, `daemon-${run}.log`);
    const start = () => {
      run++;
      const env = { ...process.env };
      delete env.NODE_EXTRA_CA_CERTS;
      daemon = spawn(
        join(project, 'dist/bin/sriov-underlay-node'),
        ['--components', 'node-policy,device-plugin', '--kubelet-dir', kubelet.dir, '--sysfs-root', '/sys', '--config', config, '--devinfo-dir', '',
          '--metrics-address', '', '--node-policy', policyFile, '--node-policy-interval-ms', '500', '--cni-state-dir', join(dir, 'cni'), '--pod-resources-socket', ''],
        { env, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      daemon.stderr!.pipe(createWriteStream(logFile()));
      return daemon;
    };
    const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
      const d = daemon;
      if (!d || d.exitCode !== null) return;
      const gone = new Promise((r) => d.once('exit', r));
      d.kill(signal);
      await gone;
    };
    defer(() => stop());
    const log = () => (existsSync(logFile()) ? readFileSync(logFile(), 'utf8') : '');
    const ids = (r: string) => (kubelet.devices(r) ?? []).map((d) => d.ID).sort();
    const vfs = (n: number, from = 0) => Array.from({ length: n - from }, (_, i) => vfPci(pf, i + from)).sort();

    // 1. A fresh node: 0 VFs. The first list kubelet gets already has the 4.
    t.equal(numVfs(), 0, 'fresh VM: sriov_numvfs 0');
    setPolicy(`policies:\n  - {name: fabric, pfNames: [${pf}], numVfs: 4, linkUp: true}\n`);
    start();
    let firstList: string[] | null = null;
    await t.step('pool net registered', () =>
      waitFor('first ListAndWatch', () => {
        if (kubelet.devices(NET) !== null) firstList ??= ids(NET);
        return firstList;
      }, 120_000, 20),
    );
    t.equal(firstList, vfs(4), "kubelet's first list of net already has the 4 VFs the policy created (never a partial list)");
    t.equal(numVfs(), 4, 'sriov_numvfs 0 -> 4');
    t.ok(readFileSync(`/sys/class/net/${pf}/flags`, 'utf8').trim() !== '' && (Number(readFileSync(`/sys/class/net/${pf}/flags`, 'utf8')) & 1) === 1, 'linkUp: the PF is up');

    // 2. 4 -> 6, the device plugin following.
    setPolicy(`policies:\n  - {name: fabric, pfNames: [${pf}], numVfs: 6, linkUp: true}\n`);
    await t.step('4 -> 6: sriov_numvfs 6 and kubelet sees 6', () => waitFor('6 VFs', () => numVfs() === 6 && ids(NET).length === 6, 120_000));
    t.equal(ids(NET), vfs(6), 'net lists VFs 0-5');
    // igb resets the port when VFs are re-created: the carrier (and so VF health) comes back after.
    await t.step('all 6 Healthy again after the port reset', () => kubelet.waitFor('healthy', () => (kubelet.devices(NET) ?? []).filter((d) => d.health === 'Healthy').length === 6, 60_000));

    // 3. 6 -> 2 while VF 1 is allocated: held; freed: applied.
    const { podUid } = await kubelet.allocate(NET, [vfPci(pf, 1)]);
    setPolicy(`policies:\n  - {name: fabric, pfNames: [${pf}], numVfs: 2, linkUp: true}\n`);
    await t.step('6 -> 2 held and reported', () => waitFor('held line', () => /sriov_numvfs 6 -> 2 held: VF \S+ in use by pod uid/.test(log()), 60_000));
    await sleep(2_000);
    t.equal(numVfs(), 6, 'held: sriov_numvfs still 6 while VF 1 is allocated');
    // (Under TCG the fake kubelet's registration can time out and be redone, emptying its view for a moment.)
    await kubelet.waitFor('kubelet lists 6', () => ids(NET).length === 6, 60_000).catch(() => undefined);
    t.equal([ids(NET).length, numVfs()], [6, 6], 'held: kubelet still has 6, sriov_numvfs still 6');
    kubelet.release(podUid);
    await t.step('freed: 6 -> 2 applied, kubelet sees 2', () => waitFor('2 VFs', () => numVfs() === 2 && ids(NET).length === 2, 120_000));

    // 4. PF MTU, live.
    const mtuBefore = mtu();
    setPolicy(`policies:\n  - {name: fabric, pfNames: [${pf}], numVfs: 2, linkUp: true, mtu: 9000}\n`);
    await t.step(`PF MTU ${mtuBefore} -> 9000`, () => waitFor('mtu 9000', () => mtu() === 9000, 60_000));
    t.equal(numVfs(), 2, 'the MTU change left the VFs alone');

    // 5. vfio-pci for VF 1: with the virtio-iommu of this boot, the binding and the pools following;
    //    on a boot without an IOMMU (VM_IOMMU= VM_KERNEL_SUITE=stock) the refusal.
    if (!existsSync('/sys/bus/pci/drivers/vfio-pci')) {
      t.ok(false, 'vfio-pci loaded in the guest', 'no /sys/bus/pci/drivers/vfio-pci (vm-modules header not honoured?)');
    } else {
      const base = `policies:\n  - {name: fabric, pfNames: [${pf}], numVfs: 2, linkUp: true, mtu: 9000}\n`;
      setPolicy(`${base}  - {name: dpdk, pfNames: ["${pf}#1"], vfDriver: vfio-pci}\n`);
      if (!existsSync(`/sys/bus/pci/devices/${vfPci(pf, 1)}/iommu_group`)) {
        await t.step('no IOMMU (and no no-IOMMU mode in this kernel): vfio-pci refused, said so', () => waitFor('no IOMMU line', () => /no IOMMU for VFs 1/.test(log()), 60_000));
        await sleep(1_500);
        t.equal(driverOf(vfPci(pf, 1)), 'igbvf', 'VF 1 left alone on igbvf');
        t.comment('SKIP vfio-pci binding: this VM has no IOMMU (and this kernel no vfio no-IOMMU mode)');
        setPolicy(base);
      } else {
        await t.step('IOMMU present: VF 1 on vfio-pci', () => waitFor('vfio-pci', () => driverOf(vfPci(pf, 1)) === 'vfio-pci', 60_000));
        await t.step('pools follow: dpdk has VF 1, net only VF 0', () => waitFor('pools', () => ids(DPDK).join() === vfPci(pf, 1) && ids(NET).join() === vfPci(pf, 0), 60_000));
        t.equal(driverOf(vfPci(pf, 0)), 'igbvf', 'VF 0 untouched');
        setPolicy(`${base}  - {name: dpdk, pfNames: ["${pf}#1"], vfDriver: netdevice}\n`);
        await t.step('back to netdevice: VF 1 on igbvf with a netdev', () => waitFor('igbvf', () => driverOf(vfPci(pf, 1)) === 'igbvf' && vfNetdev(vfPci(pf, 1)) !== null, 60_000));
        await t.step('pools follow: net has both, dpdk none', () => waitFor('pools back', () => ids(NET).length === 2 && ids(DPDK).length === 0, 60_000));
      }
    }

    // 6. A restart applies nothing twice: same VFs (same ifindexes), no write logged.
    setPolicy(`policies:\n  - {name: fabric, pfNames: [${pf}], numVfs: 2, linkUp: true, mtu: 9000}\n`);
    await sleep(1_500);
    const before = snapshot();
    await stop();
    start();
    await t.step('restarted daemon: first pass done', () => waitFor('first pass', () => /node policy first pass done/.test(log()), 120_000));
    await t.step('restarted daemon: re-registered', () => waitFor('net again', () => /pool serving/.test(log()), 60_000));
    t.ok(!/"node policy applied"/.test(log()), 'restart: no write at all', log().split('\n').filter((l) => l.includes('node policy applied')).join(' | '));
    t.equal(snapshot(), before, 'restart: VFs, drivers, ifindexes, MTU, flags unchanged');

    // 7. externallyManaged: never writes.
    setPolicy(`policies:\n  - {name: fabric, pfNames: [${pf}], numVfs: 4, mtu: 1500, externallyManaged: true}\n`);
    await t.step('externallyManaged mismatch reported', () => waitFor('mismatch', () => /sriov_numvfs is 2, the policy says 4/.test(log()), 60_000));
    await sleep(1_500);
    t.equal(snapshot(), before, 'externallyManaged: nothing written');

    // 8. Bad input: the node exactly as it was.
    const bad: Array<[string, string, RegExp]> = [
      ['numVfs above sriov_totalvfs', `policies:\n  - {name: big, pfNames: [${pf}], numVfs: ${total + 1}}\n`, /entry \\"big\\": field \\"numVfs\\": \d+ is more than PF/],
      ['an unknown PF', 'policies:\n  - {name: ghost, pfNames: [ens9f9], numVfs: 3}\n', /no SR-IOV PF \\"ens9f9\\" on this node/],
      ['overlapping entries', `policies:\n  - {name: x, pfNames: [${pf}], numVfs: 3}\n  - {name: y, pfNames: [${pf}], numVfs: 5}\n`, /overlaps entry \\"y\\": numVfs 3 vs 5/],
      ['a VF range past the end', `policies:\n  - {name: r, pfNames: ["${pf}#1-4"], vfDriver: vfio-pci}\n`, /VF range 1-4 of PF \S+ goes past its last VF/],
      ['malformed YAML', 'policies: [ {name: a, numVfs: ', /not valid JSON or YAML/],
    ];
    for (const [what, text, re] of bad) {
      setPolicy(text);
      await t.step(`bad input (${what}): rejected with a clear error`, () => waitFor(what, () => re.test(log()), 60_000));
      await sleep(1_200);
      t.equal(snapshot(), before, `bad input (${what}): the node exactly as it was`);
    }

    // 9. SIGKILL in the middle of an apply (2 -> 4: the MTU back to 1500, then through 0), then a restart converges.
    await stop();
    setPolicy(`policies:\n  - {name: fabric, pfNames: [${pf}], numVfs: 4, linkUp: true, mtu: 1500}\n`);
    const d = start();
    const seen = await waitFor('the apply under way', () => (mtu() === 1500 || numVfs() !== 2 ? `mtu ${mtu()}, sriov_numvfs ${numVfs()}` : null), 120_000, 5);
    d.kill('SIGKILL');
    await new Promise((r) => (d.exitCode !== null || d.signalCode !== null ? r(null) : d.once('exit', r)));
    t.comment(`killed at: ${seen}; now ${readdirSync(dev).filter((e) => e.startsWith('virtfn')).length} virtfn links`);
    start();
    await t.step('restarted after SIGKILL: converges to 4 VFs and MTU 1500, kubelet sees them', () => waitFor('converged', () => numVfs() === 4 && mtu() === 1500 && ids(NET).length === 4, 180_000));
  },
};
