import { describe, expect, it } from 'vitest';
import { ConfigFileError, parsePoolsConfig, rejectOverlaps } from '../../../node/device-plugin/config';
import { vf } from './vf';

describe('pools config', () => {
  it('reads YAML and JSON alike, with defaults', () => {
    const yaml = parsePoolsConfig('resourceList:\n  - resourceName: a\n    selectors:\n      pfNames: ["ens1f0#0-3,7"]\n', 'f');
    const json = parsePoolsConfig('{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["ens1f0#0-3,7"]}}]}', 'f');
    expect(yaml).toEqual(json);
    expect(yaml.errors).toEqual([]);
    expect(yaml.pools[0]).toMatchObject({ resourcePrefix: 'sriov-underlay.io', deviceType: 'netdevice', placement: 'spread' });
    expect(yaml.pools[0]?.selectors.pfNames).toEqual([{ base: 'ens1f0', ranges: [[0, 3], [7, 7]] }]);
  });

  it('drops only the invalid pools, each error naming pool and field', () => {
    const cfg = parsePoolsConfig(
      JSON.stringify({
        resourceList: [
          { resourceName: 'good' , selectors: { drivers: ['igbvf'] } },
          { resourceName: 'badrange', selectors: { pfNames: ['ens1f0#5-2'] } },
          { resourceName: 'badvendor', selectors: { vendors: ['intel'] } },
          { resourceName: 'typo', selector: {} },
          { resourceName: 'badtype', deviceType: 'dpdk' },
          { resourcePrefix: 'x.io' },
          { resourceName: 'good' },
          { resourceName: 'badroot', selectors: { rootDevices: ['81:00.0'] } },
        ],
      }),
      'f',
    );
    expect(cfg.pools.map((p) => p.resourceName)).toEqual(['good']);
    expect(cfg.errors).toEqual([
      'pool "badrange" (resourceList[1]): field "selectors.pfNames.0": "ens1f0#5-2": range "5-2" ends before it starts',
      'pool "badvendor" (resourceList[2]): field "selectors.vendors.0": expected a 4-digit hex PCI id like "8086"',
      expect.stringMatching(/^pool "typo" \(resourceList\[3\]\): field "\(root\)": .*selector/),
      expect.stringMatching(/^pool "badtype" \(resourceList\[4\]\): field "deviceType": .*"netdevice"/),
      expect.stringMatching(/^pool resourceList\[5\]: field "resourceName": /),
      'pool "good" (resourceList[6]): field "resourceName": "sriov-underlay.io/good" is already used by pool "good" (resourceList[0]); pool rejected',
      'pool "badroot" (resourceList[7]): field "selectors.rootDevices.0": "81:00.0" is not a PCI address (dddd:bb:dd.f, lower-case hex)',
    ]);
  });

  it('rejects a file it cannot parse as a whole', () => {
    expect(() => parsePoolsConfig('resourceList: [ {', 'pools.yaml')).toThrow(ConfigFileError);
    expect(() => parsePoolsConfig('pools: []', 'pools.yaml')).toThrow('pools config pools.yaml: top level: field "resourceList": Invalid input: expected array, received undefined; field "(root)": Unrecognized key: "pools"');
    expect(() => parsePoolsConfig('resourceList: 3', 'pools.yaml')).toThrow(/field "resourceList"/);
  });

  it('rejects a pool that overlaps an earlier one on present devices, keeps disjoint ones', () => {
    const cfg = parsePoolsConfig(
      JSON.stringify({
        resourceList: [
          { resourceName: 'low', selectors: { pfNames: ['ens1f0#0-1'] } },
          { resourceName: 'all', selectors: { vendors: ['8086'] } },
          { resourceName: 'high', selectors: { pfNames: ['ens1f0#2-3'] } },
        ],
      }),
      'f',
    );
    const vfs = [0, 1, 2, 3].map((i) => vf(`0000:81:10.${i}`, { vfIndex: i }));
    const out = rejectOverlaps(cfg, vfs);
    expect(out.pools.map((p) => p.resourceName)).toEqual(['low', 'high']);
    expect(out.errors).toEqual(['pool "all": field "selectors": overlaps pool "low" (both match VF 0000:81:10.0); pool rejected']);
  });
});
