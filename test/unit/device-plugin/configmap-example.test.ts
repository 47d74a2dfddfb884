import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parsePoolsConfig } from '../../../node/device-plugin/config';

describe('configmaps/device-plugin-pools.yaml', () => {
  it('holds a pools config that validates without errors', () => {
    const file = path.join(__dirname, '../../../configmaps/device-plugin-pools.yaml');
    const cm = YAML.parse(fs.readFileSync(file, 'utf8')) as { kind: string; data: Record<string, string> };
    expect(cm.kind).toBe('ConfigMap');
    const cfg = parsePoolsConfig(cm.data['pools.yaml']!, 'pools.yaml');
    expect(cfg.errors).toEqual([]);
    expect(cfg.pools.map((p) => `${p.resourcePrefix}/${p.resourceName}:${p.deviceType}:${p.placement}`)).toEqual([
      'sriov-underlay.io/fabric-a:netdevice:spread',
      'sriov-underlay.io/fabric-b:netdevice:spread',
      'sriov-underlay.io/dpdk:vfio:pack',
    ]);
  });
});
