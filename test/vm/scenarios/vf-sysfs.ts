/** VF creation on the real igb driver, and the real sysfs layout the CNI and device plugin read. */
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import type { Scenario } from '../lib/scenario';
import { findPf, pfPci, setNumVfs, vfLines, vfNetdev } from '../lib/sriov';

const PCI = '/sys/bus/pci/devices';

export const scenario: Scenario = {
  async run({ t }) {
    const pf = await t.step('an igb PF netdev exists', () => findPf());
    const pfAddr = pfPci(pf);
    const total = Number(readFileSync(`${PCI}/${pfAddr}/sriov_totalvfs`, 'utf8'));
    t.equal(total, 7, 'sriov_totalvfs is 7 (82576)');
    const vfs = await t.step('4 VFs created through sriov_numvfs, each with an igbvf netdev', () => setNumVfs(pf, 4));
    t.equal(readFileSync(`${PCI}/${pfAddr}/sriov_numvfs`, 'utf8').trim(), '4', 'sriov_numvfs reads back 4');
    for (const [i, vf] of vfs.entries()) {
      t.ok(existsSync(`${PCI}/${pfAddr}/virtfn${i}`), `virtfn${i} link exists`);
      t.equal(basename(readlinkSync(`${PCI}/${vf}/physfn`)), pfAddr, `VF ${i} physfn points at the PF`);
      t.equal(basename(readlinkSync(`${PCI}/${vf}/driver`)), 'igbvf', `VF ${i} is bound to igbvf`);
      const dev = vfNetdev(vf);
      t.ok(dev !== null && existsSync(`/sys/class/net/${dev}`), `VF ${i} has a netdev under net/ (${dev})`);
    }
    const lines = await vfLines(pf);
    t.equal(lines.length, 4, 'ip -d link show <PF> lists 4 VF lines');
    t.comment(`VF line as iproute2 prints it: ${lines[0]}`);
    await setNumVfs(pf, 0);
    t.equal(vfs.filter((v) => existsSync(`${PCI}/${v}`)).length, 0, 'sriov_numvfs=0 removes every VF');
  },
};
