import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listPfs, listVfs, readVf } from '../../src/sysfs/pci';
import { UnderlayError } from '../../src/errors';
import { rebindVf, setNumVfs, writeSysfsTree, type PfSpec } from '../fixtures/sysfs-tree';

let root: string;
let pf: PfSpec;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sysfs-'));
  pf = {
    pciAddr: '0000:81:00.0',
    netdev: 'ens1f0',
    numaNode: 1,
    vfs: [
      { pciAddr: '0000:81:10.0', netdev: 'ens1f0v0' },
      { pciAddr: '0000:81:10.1', netdev: 'ens1f0v1' },
      { pciAddr: '0000:81:10.2', netdev: null, driver: 'vfio-pci', iommuGroup: 42 },
    ],
  };
  writeSysfsTree(root, [pf]);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('sysfs reader', () => {
  it('resolves a VF to its PF, index, netdev, driver and NUMA node', () => {
    const vf = readVf(root, '0000:81:10.1');
    expect(vf).toMatchObject({
      pciAddr: '0000:81:10.1',
      pfPciAddr: '0000:81:00.0',
      pfNetdev: 'ens1f0',
      vfIndex: 1,
      netdevs: ['ens1f0v1'],
      driver: 'igbvf',
      numaNode: 1,
      vendor: '8086',
      device: '10ca',
      userspace: false,
    });
  });

  it('marks a vfio-bound VF as userspace with no netdev', () => {
    const vf = readVf(root, '0000:81:10.2');
    expect(vf.userspace).toBe(true);
    expect(vf.netdevs).toEqual([]);
    expect(vf.iommuGroup).toBe(42);
  });

  it('rejects malformed, missing and non-VF addresses with clear errors', () => {
    expect(() => readVf(root, '81:10.1')).toThrow(/not a PCI address/);
    expect(() => readVf(root, '0000:82:10.1')).toThrow(/not found/);
    expect(() => readVf(root, '0000:81:00.0')).toThrow(/not an SR-IOV VF/);
    try {
      readVf(root, '0000:82:10.1');
    } catch (e) {
      expect(e).toBeInstanceOf(UnderlayError);
    }
  });

  it('lists PFs and their VFs in index order, and follows numvfs and rebinds', () => {
    expect(listPfs(root).map((p) => [p.pciAddr, p.numVfs, p.totalVfs])).toEqual([['0000:81:00.0', 3, 7]]);
    expect(listVfs(root, '0000:81:00.0').map((v) => v.vfIndex)).toEqual([0, 1, 2]);
    setNumVfs(root, pf, 1);
    expect(listVfs(root, '0000:81:00.0').map((v) => v.pciAddr)).toEqual(['0000:81:10.0']);
    expect(listPfs(root)[0]?.numVfs).toBe(1);
    setNumVfs(root, pf, 3);
    rebindVf(root, '0000:81:10.0', 'vfio-pci', null);
    const vfs = listVfs(root, '0000:81:00.0');
    expect(vfs.map((v) => v.userspace)).toEqual([true, false, true]);
  });
});
