// The node policy's parsing and planning, pure: hostile and odd input, bounds, and what overlaps.
import { describe, expect, it } from 'vitest';
import { parsePolicy, PolicyFileError } from '../../../node/policy/load';
import { buildPlan, wantedDriver } from '../../../node/policy/plan';
import type { PfDevice } from '../../../src/sysfs/pci';

const src = { configMap: 'sriov-underlay/node-policy', file: '/etc/sriov-underlay/node-policy/policy.yaml' };
const pf = (n: number, name: string, numVfs = 0): PfDevice => ({
  pciAddr: `0000:8${n}:00.0`, vendor: '8086', device: '1572', driver: 'i40e', numaNode: 0, netdevs: [name], numVfs, totalVfs: 64,
});
const PFS = [pf(1, 'ens1f0'), pf(2, 'ens1f1', 8)];

describe('node policy file', () => {
  it('an empty key is no policy; a wrong envelope, aliases bomb, or too many entries are refused whole', () => {
    expect(parsePolicy('', src)).toEqual({ entries: [], errors: [] });
    expect(() => parsePolicy('- a\n- b\n', src)).toThrow(/key "policy.yaml": field "\(root\)"/);
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`), 'policies: *i'].join('\n');
    expect(() => parsePolicy(bomb, src)).toThrow(PolicyFileError);
    const many = { policies: Array.from({ length: 257 }, (_, i) => ({ name: `p${i}`, pfNames: ['ens1f0'], mtu: 1500 })) };
    expect(() => parsePolicy(JSON.stringify(many), src)).toThrow(/field "policies": .*at most 256 entries/);
  });

  it('each bad entry is rejected alone, naming ConfigMap, key, entry and field; the good ones stay', () => {
    const r = parsePolicy(JSON.stringify({ policies: [
      { name: 'ok', pfNames: ['ens1f0'], numVfs: 4 },
      { name: 'Bad_Name', pfNames: ['ens1f0'], numVfs: 4 },
      { name: 'nothing', pfNames: ['ens1f0'] },
      { name: 'nopf', numVfs: 2 },
      { name: 'range-no-driver', pfNames: ['ens1f0#0-3'], numVfs: 4 },
      { name: 'neg', pfNames: ['ens1f0'], numVfs: -1 },
      { name: 'down', pfNames: ['ens1f0'], linkUp: false },
      { name: 'badrange', pfNames: ['ens1f0#3-1'], vfDriver: 'vfio-pci' },
      { name: 'ok', pfNames: ['ens1f1'], mtu: 9000 },
      'not an object',
      { name: 'ev', pfNames: ['ens1f0'], numVfs: 2, disruption: 'evict', externallyManaged: true },
      { name: 'ev-ok', pfNames: ['ens1f2'], numVfs: 2, disruption: 'evict' },
    ] }), src);
    expect(r.entries.map((e) => e.name)).toEqual(['ok', 'ev-ok']);
    const pre = 'ConfigMap sriov-underlay/node-policy key "policy.yaml": ';
    expect(r.errors).toEqual([
      expect.stringMatching(new RegExp(`^${pre}policies\\[1\\] "Bad_Name": field "name": `)),
      `${pre}policies[2] "nothing": field "numVfs": declares nothing: set numVfs, mtu, linkUp or vfDriver`,
      `${pre}policies[3] "nopf": field "pfNames": select the PFs: pfNames, rootDevices or vendors/devices`,
      `${pre}policies[4] "range-no-driver": field "pfNames": a VF range ("#N-M") only chooses the VFs that vfDriver applies to: set vfDriver, or drop the range`,
      expect.stringMatching(new RegExp(`^${pre}policies\\[5\\] "neg": field "numVfs": `)),
      `${pre}policies[6] "down": field "linkUp": only true (bring the PF up); omit it to leave the link alone`,
      `${pre}policies[7] "badrange": field "pfNames.0": "ens1f0#3-1": range "3-1" ends before it starts`,
      `${pre}policies[8] "ok": field "name": "ok" is already used by policies[0]; entry rejected`,
      expect.stringMatching(new RegExp(`^${pre}policies\\[9\\]: field "\\(root\\)": `)),
      `${pre}policies[10] "ev": field "disruption": evict with externallyManaged: true would evict pods for a change this node never writes`,
    ]);
  });
});

describe('node policy plan', () => {
  const plan = (policies: unknown[], pfs = PFS, labels: Record<string, string> | null = {}) => {
    const r = parsePolicy(JSON.stringify({ policies }), src);
    expect(r.errors).toEqual([]);
    return buildPlan(r.entries, labels, pfs);
  };

  it('two entries may share a PF when they agree: numVfs on one, disjoint driver ranges on others', () => {
    const p = plan([
      { name: 'count', pfNames: ['ens1f0'], numVfs: 8 },
      { name: 'dpdk', pfNames: ['ens1f0#4-7'], vfDriver: 'vfio-pci' },
      { name: 'kernel', rootDevices: ['0000:81:00.0#0-3'], vfDriver: 'netdevice' },
    ]);
    expect(p.rejected).toEqual([]);
    expect(p.pfs).toHaveLength(1);
    expect(p.pfs[0]).toMatchObject({ name: 'ens1f0', numVfs: 8, entries: ['count', 'dpdk', 'kernel'] });
    expect([0, 3, 4, 7].map((i) => wantedDriver(p.pfs[0]!, i))).toEqual(['netdevice', 'netdevice', 'vfio-pci', 'vfio-pci']);
  });

  it('vendors/devices select every matching PF; a range is checked against the count the plan leaves', () => {
    const p = plan([{ name: 'all', vendors: ['8086'], devices: ['1572'], numVfs: 2 }, { name: 'd', pfNames: ['ens1f1#1'], vfDriver: 'vfio-pci' }]);
    expect(p.pfs.map((x) => [x.name, x.numVfs])).toEqual([['ens1f0', 2], ['ens1f1', 2]]);
    // Without "all", ens1f1 keeps its 8 VFs, so VF 7 is in range; with numVfs 2 it is not.
    expect(plan([{ name: 'd', pfNames: ['ens1f1#7'], vfDriver: 'vfio-pci' }]).rejected).toEqual([]);
    const past = plan([{ name: 'all', vendors: ['8086'], numVfs: 2 }, { name: 'd', pfNames: ['ens1f1#7'], vfDriver: 'vfio-pci' }]);
    expect(past.rejected).toEqual([{ entry: 'd', field: 'pfNames', message: 'VF range 7 of PF ens1f1 goes past its last VF (2 VFs: 0-1)' }]);
    expect(past.pfs.map((x) => x.entries)).toEqual([['all'], ['all']]);
  });

  it('an externallyManaged entry and a managed one on one PF overlap; so do two drivers for one VF', () => {
    const p = plan([
      { name: 'ext', pfNames: ['ens1f0'], numVfs: 8, externallyManaged: true },
      { name: 'own', pfNames: ['ens1f0'], mtu: 9000 },
      { name: 'v1', pfNames: ['ens1f1#0-3'], vfDriver: 'vfio-pci' },
      { name: 'v2', pfNames: ['ens1f1#3-5'], vfDriver: 'vfio-pci' },
    ]);
    expect(p.pfs).toEqual([]);
    expect(p.rejected.map((r) => r.entry).sort()).toEqual(['ext', 'own', 'v1', 'v2']);
  });

  it('nodeSelector: not this node = not a rejection; labels unknown = rejected', () => {
    const e = [{ name: 's', nodeSelector: { 'sriov-underlay.io/fabric': 'a' }, pfNames: ['ens1f0'], numVfs: 1 }];
    expect(plan(e, PFS, { 'sriov-underlay.io/fabric': 'b' })).toEqual({ pfs: [], rejected: [] });
    expect(plan(e, PFS, null).rejected).toEqual([{ entry: 's', field: 'nodeSelector', message: "this node's labels are unknown (no API access); entry not applied" }]);
    expect(plan(e, PFS, { 'sriov-underlay.io/fabric': 'a' }).pfs).toHaveLength(1);
  });

  it('255 entries (the cap is 256) on 64 PFs plan in one pass without blowing up', () => {
    const pfs = Array.from({ length: 64 }, (_, i) => ({ ...pf(1, `p${i}`, 8), pciAddr: `0000:${(0x40 + i).toString(16)}:00.0` }));
    const entries = Array.from({ length: 255 }, (_, i) => ({ name: `e${i}`, pfNames: [`p${i % 64}#${Math.floor(i / 64) * 2}-${Math.floor(i / 64) * 2 + 1}`], vfDriver: 'vfio-pci' }));
    const p = plan(entries, pfs);
    expect(p.rejected).toEqual([]);
    expect(p.pfs).toHaveLength(64);
    expect(p.pfs.every((x, i) => x.drivers.length === (i === 63 ? 3 : 4) && [0, 5].every((i) => wantedDriver(x, i) === 'vfio-pci'))).toBe(true);
    // One more entry colliding with e0 rejects exactly those two.
    const q = plan([...entries, { name: 'late', pfNames: ['p0#1'], vfDriver: 'netdevice' }], pfs);
    expect(q.rejected.map((r) => r.entry).sort()).toEqual(['e0', 'late']);
  });
});
