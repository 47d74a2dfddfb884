import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { RegistrationIndex } from '../../../src/registrations/index';
import type { ConfigMapObject, LookupResult } from '../../../src/registrations/types';

// The examples in configmaps/ are what the demo applies and what the docs quote: they must stay valid.
function load(file: string): ConfigMapObject[] {
  const text = fs.readFileSync(path.join(__dirname, '../../../configmaps', file), 'utf8');
  return parseAllDocuments(text).map((d, i) => ({
    ...(d.toJS() as ConfigMapObject),
    metadata: { ...(d.toJS() as ConfigMapObject).metadata, resourceVersion: String(i + 1), creationTimestamp: '2026-01-01T00:00:00Z' },
  }));
}

function ips(r: LookupResult): string[] {
  if (r.kind !== 'resolved') throw new Error(JSON.stringify(r));
  return r.settings.ips;
}

describe('configmaps/ examples', () => {
  const idx = new RegistrationIndex();
  idx.replaceAll([...load('networks.yaml'), ...load('registrations.yaml')]);

  it('have no rejected key', () => {
    expect(idx.allRejections()).toEqual([]);
    expect(idx.networks().map((n) => n.name).sort()).toEqual(['vlan100', 'vlan200']);
  });

  it('give each demo pod what the comments say', () => {
    expect(ips(idx.lookup('demo', 'app-a'))).toEqual(['10.100.0.11/24']);
    expect(ips(idx.lookup('demo', 'app-b'))).toEqual(['10.100.0.12/24', 'fd00:100::12/64']);
    expect(ips(idx.lookup('demo', 'app-c'))).toEqual(['10.200.0.13/24']);
    expect(ips(idx.lookup('demo', 'mysql-1'))).toEqual(['10.100.0.22/24', 'fd00:100::22/64']);
    const m2 = idx.lookup('demo', 'mysql-2');
    expect(m2.kind === 'resolved' && m2.settings.maxTxRateMbps).toBe(1000);
    const web = idx.lookup('demo', 'web');
    expect(web.kind === 'resolved' && web.settings.pool).toEqual({ reserve: false });
  });
});
