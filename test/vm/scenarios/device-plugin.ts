// vm-requires: dist/bin/sriov-underlay-node
/**
 * The node daemon's device plugin on the real igb PF and igbvf VFs, driven by the fake kubelet:
 * discovery from real sysfs, pools by vendor/device (82576 VF = 8086:10ca), pfNames#range and
 * rootDevices#range, Allocate, PF down -> Unhealthy -> up, sriov_numvfs 4 -> 2 -> 4, kubelet restart.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeKubelet } from '../../fakes/kubelet';
import type { Scenario } from '../lib/scenario';
import { ip } from '../lib/sh';
import { findPf, pfPci, pfUp, setNumVfs } from '../lib/sriov';

const LOW = 'sriov-underlay.io/low';
const REST = 'sriov-underlay.io/rest';

export const scenario: Scenario = {
  timeoutSec: 300,
  async run({ t, project, outDir, defer }) {
    const pf = await t.step('an igb PF netdev exists', () => findPf());
    await t.step('PF up with carrier', () => pfUp(pf));
    const vfs = await t.step('4 VFs', () => setNumVfs(pf, 4));
    const dir = '/run/vmtest/dp';
    mkdirSync(join(dir, 'cfg'), { recursive: true });
    const config = join(dir, 'cfg', 'pools.yaml');
    writeFileSync(
      config,
      [
        'resourceList:',
        `  - {resourceName: low, selectors: {pfNames: ["${pf}#0-1"]}}`,
        `  - {resourceName: rest, selectors: {vendors: ["8086"], devices: ["10ca"], rootDevices: ["${pfPci(pf)}#2-6"]}}`,
        '',
      ].join('\n'),
    );
    const kubelet = new FakeKubelet(join(dir, 'kubelet'), 'legacy');
    await kubelet.start();
    defer(() => kubelet.stop());
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const daemon = spawn(
      join(project, 'dist/bin/sriov-underlay-node'),
      ['--kubelet-dir', kubelet.dir, '--sysfs-root', '/sys', '--config', config, '--devinfo-dir', join(dir, 'devinfo'), '--metrics-address', '', '--log-level', 'debug'],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    daemon.stderr!.pipe(createWriteStream(join(outDir, 'daemon.log')));
    defer(() => {
      daemon.kill('SIGTERM');
    });

    const ids = (r: string) => (kubelet.devices(r) ?? []).map((d) => d.ID);
    const health = (r: string) => (kubelet.devices(r) ?? []).map((d) => d.health);
    await t.step('both pools registered and streaming', () =>
      kubelet.waitFor('pools', () => kubelet.devices(LOW) !== null && kubelet.devices(REST) !== null, 180_000).catch((e: Error) => {
        const seen = { registerCalls: kubelet.registerCalls, registrations: kubelet.registrations, connections: kubelet.connections.map((c) => ({ r: c.resource, open: c.streamOpen, updates: c.updates })) };
        throw new Error(`${e.message}; kubelet saw ${JSON.stringify(seen)}`);
      }),
    );
    await kubelet.waitFor('4 VFs listed', () => ids(LOW).length + ids(REST).length === 4, 30_000).catch(() => undefined);
    t.equal(ids(LOW), vfs.slice(0, 2), `${pf}#0-1 -> low: VFs 0 and 1, by PCI address`);
    t.equal(ids(REST), vfs.slice(2), '8086:10ca on the PF, VF 2-6 -> rest: VFs 2 and 3');
    t.equal(health(LOW).concat(health(REST)), ['Healthy', 'Healthy', 'Healthy', 'Healthy'], 'all Healthy with the PF up');
    t.equal(kubelet.devices(LOW)?.[0]?.topology, { nodes: [{ ID: 0 }] }, 'NUMA topology node 0 (one-node guest, numa_node -1)');

    const { podUid, response } = await kubelet.allocate(LOW, [vfs[0]!]);
    t.equal(response.container_responses[0]?.envs.PCIDEVICE_SRIOV_UNDERLAY_IO_LOW, vfs[0], 'Allocate: PCIDEVICE_SRIOV_UNDERLAY_IO_LOW');
    const info = join(dir, 'devinfo', `sriov-underlay.io-low-${vfs[0]}-device.json`);
    t.ok(existsSync(info) && JSON.parse(readFileSync(info, 'utf8')).pci['pf-pci-address'] === pfPci(pf), 'device-info file names the VF and its PF');

    let t0 = Date.now();
    await ip('link', 'set', 'dev', pf, 'down');
    await t.step('PF down -> every VF Unhealthy', () =>
      kubelet.waitFor('unhealthy', () => [...health(LOW), ...health(REST)].every((h) => h === 'Unhealthy'), 30_000),
    );
    t.comment(`PF down -> ListAndWatch Unhealthy in ${Date.now() - t0} ms (goal 1 s; TCG)`);
    t0 = Date.now();
    await pfUp(pf);
    await t.step('PF up again -> Healthy', () => kubelet.waitFor('healthy', () => [...health(LOW), ...health(REST)].every((h) => h === 'Healthy'), 60_000));
    t.comment(`PF up -> Healthy in ${Date.now() - t0} ms, igb link negotiation included (2-3 s under TCG)`);

    kubelet.release(podUid); // the pod is gone before the VFs are re-created
    await setNumVfs(pf, 2);
    await t.step('sriov_numvfs 4 -> 2: rest empties, low keeps 2', () =>
      kubelet.waitFor('numvfs 2', () => ids(REST).length === 0 && ids(LOW).length === 2, 60_000),
    );
    await setNumVfs(pf, 4);
    await t.step('sriov_numvfs 2 -> 4: rest has 2 again', () => kubelet.waitFor('numvfs 4', () => ids(REST).length === 2 && ids(LOW).length === 2, 60_000));

    const before = kubelet.registrations.length;
    const calls = kubelet.registerCalls;
    await kubelet.restart();
    await t.step('kubelet restart (socket gone, directory wiped) -> re-registered', () =>
      kubelet.waitFor('re-registration', () => kubelet.registrations.length >= before + 2 && ids(LOW).length === 2 && ids(REST).length === 2, 120_000),
    );
    // A 3 s Register deadline used to re-register here every few seconds, each time adding a stream.
    await new Promise((r) => setTimeout(r, 10_000));
    const again = kubelet.registrations.slice(before);
    t.equal(
      { registerCalls: kubelet.registerCalls - calls, accepted: [LOW, REST].map((r) => again.filter((a) => a.resource === r && a.accepted).length), streams: [LOW, REST].map((r) => kubelet.liveStreams(r)) },
      { registerCalls: 2, accepted: [1, 1], streams: [1, 1] },
      'after the restart: one Register, one registration and one ListAndWatch stream per pool',
    );
  },
};
