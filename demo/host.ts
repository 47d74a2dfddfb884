/**
 * The host platform: an emulated dual-port 82576 in a generated sysfs tree, its PF and VF netdevs
 * veth pairs cabled into a private fabric netns, each PF on its own bridge (its own wire), so the
 * two networks are separate segments even though a veth PF can enforce no VLAN.
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createEmulatedNic } from '../test/fixtures/sysfs-tree';
import { loadConfigMaps, poolsFor, withoutPfSide } from './configmaps';
import type { Platform } from './flow';
import type { Teardown } from './teardown';

export const HOST_TAG_PREFIX = 'dm';

export function ipCmd(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('ip', args, { encoding: 'utf8' }, (err, stdout, stderr) => (err ? reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(stdout))),
  );
}

function pingOnce(netns: string, addr: string): Promise<boolean> {
  return new Promise((resolve) => execFile('ip', ['netns', 'exec', netns, 'ping', '-n', '-q', '-c', '2', '-W', '1', addr], (err) => resolve(!err)));
}

export function hostPlatform(repo: string, teardown: Teardown): Platform {
  const tag = `${HOST_TAG_PREFIX}${crypto.randomBytes(1).toString('hex')}`;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-demo-`));
  teardown.push(`remove ${workDir}`, () => fs.rmSync(workDir, { recursive: true, force: true }));
  const cms = loadConfigMaps(repo);
  const derived = withoutPfSide(cms);
  const root = path.join(workDir, 'sys');
  const nic = createEmulatedNic({ tag, root, pfs: 2, vfsPerPf: 4, bus: 0x01, layout: 'dual-port-82576', bridgePerPf: true });
  // Deleting the fabric netns takes every veth pair with it (the VFs come home from the pod netns
  // first, when those are deleted, which the teardown does before this).
  teardown.push(`delete the emulated NIC (netns ${nic.fabricNs}, its veths, the sysfs tree)`, () => nic.destroy());
  const pools = poolsFor(cms, { pfNames: Object.fromEntries(nic.pfs.map((pf, i) => [`ens1f${i}`, pf.netdev])), rootDevices: {} });
  const pfList = nic.pfs.map((pf, i) => `${pf.netdev} (${pf.pciAddr}, bridge ${nic.bridgeOf(i)})`).join(' and ');
  return {
    mode: 'host',
    repo,
    tag,
    workDir,
    sysfsRoot: root,
    networks: derived.networks,
    registrations: derived.registrations,
    pools: cms.pools,
    poolsText: pools.text,
    registered: { networks: cms.networks, registrations: cms.registrations },
    notes: [
      derived.note,
      `emulated dual-port 82576 in ${root}: PFs ${pfList}, 4 VFs each; each PF and its VFs on its own fabric bridge in netns ${nic.fabricNs}`,
      `pool selectors name the example card's ports; here they are: ${pools.changes.join(', ') || 'unchanged'}`,
    ],
    enforcement: {
      vlan: 'fabric, emulated',
      qos: 'not enforced',
      explain:
        'host mode: VLAN and QoS are the registered values; the PF is a veth without a VF table, so the VLAN is ' +
        'enforced by the emulated fabric (a wire per network) and the rates by nothing. `npm run demo -- --vm` applies both on a real PF.',
    },
    cniPath: ['/usr/lib/cni', '/opt/cni/bin'].filter((d) => fs.existsSync(d)).join(':'),
    ip: ipCmd,
    ping: pingOnce,
  };
}
