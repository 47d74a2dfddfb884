/**
 * Bounded input: the limits of src/registrations/limits.ts are enforced when a ConfigMap is
 * indexed, with a rejection naming ConfigMap, key and field, and the rest keeps serving.
 */
import { describe, expect, it } from 'vitest';
import { RegistrationIndex } from '../../../src/registrations/index';
import { MAX_ADDRESSES_PER_ENTRY, MAX_CONFIGMAP_BYTES, MAX_KEYS_PER_CONFIGMAP, MAX_VALUE_BYTES } from '../../../src/registrations/limits';
import { configMap, networksCm, rejected, resolved } from './fixtures';

/** n distinct IPv4 addresses inside 10.64.0.0/10. */
const v4 = (n: number) => Array.from({ length: n }, (_, i) => `10.${64 + ((i + 2) >> 16)}.${((i + 2) >> 8) & 255}.${(i + 2) & 255}`);
const BIG_NET = 'subnet: 10.64.0.0/10\ngateway: 10.64.0.1\nresourceName: sriov-underlay.io/vf-pool-a';

function index() {
  const idx = new RegistrationIndex();
  idx.applyConfigMap(networksCm({ big: BIG_NET }));
  return idx;
}

describe('limits', () => {
  it('a key of 50,000 addresses is rejected unparsed, naming it; the other keys of its ConfigMap serve', () => {
    const idx = index();
    idx.applyConfigMap(configMap('ns', 'huge', 'registration', { db: `network: big\nips: [${v4(50_000).join(', ')}]`, ok: 'network: big\nip: 10.64.0.9' }));
    const r = rejected(idx.lookup('ns', 'db-7', 'big'));
    expect(r.field).toBe('(size)');
    expect(r.message).toMatch(new RegExp(`^configmap ns/huge key "db": field "\\(size\\)": \\d+ bytes of YAML; the limit is ${MAX_VALUE_BYTES} per key$`));
    expect(resolved(idx.lookup('ns', 'ok', 'big')).ips).toEqual(['10.64.0.9/10']);
  });

  it(`an ips list longer than ${MAX_ADDRESSES_PER_ENTRY} is rejected naming the field; at the limit it is served`, () => {
    const idx = index();
    idx.applyConfigMap(configMap('ns', 'r', 'registration', {
      over: `network: big\nips: [${v4(MAX_ADDRESSES_PER_ENTRY + 1).join(', ')}]`,
      at: `network: big\nips: [${v4(MAX_ADDRESSES_PER_ENTRY + 10).slice(10).join(', ')}]`,
    }));
    expect(rejected(idx.lookup('ns', 'over-0', 'big')).message).toMatch(/^configmap ns\/r key "over": field "ips": Too big: expected array to have <=1024 items/);
    expect(resolved(idx.lookup('ns', `at-${MAX_ADDRESSES_PER_ENTRY - 1}`, 'big')).ips).toHaveLength(1);
    expect(idx.rejectionsOf('ns', 'r').map((x) => x.key)).toEqual(['over']);
  });

  it('a ConfigMap with too many keys is rejected once, as a whole, and each of its pods fails naming its key', () => {
    const idx = index();
    const data: Record<string, string> = {};
    const ips = v4(MAX_KEYS_PER_CONFIGMAP + 1);
    for (let i = 0; i <= MAX_KEYS_PER_CONFIGMAP; i++) data[`p-${i}`] = `network: big\nip: ${ips[i]}`;
    idx.applyConfigMap(configMap('ns', 'many', 'registration', data));
    expect(idx.rejectionsOf('ns', 'many').map((r) => r.message)).toEqual([
      `configmap ns/many: field "data": has ${MAX_KEYS_PER_CONFIGMAP + 1} keys; the limit is ${MAX_KEYS_PER_CONFIGMAP} per ConfigMap: none of its keys is used (split it)`,
    ]);
    expect(rejected(idx.lookup('ns', 'p-3', 'big')).message).toBe(
      `configmap ns/many key "p-3": field "data": has ${MAX_KEYS_PER_CONFIGMAP + 1} keys; the limit is ${MAX_KEYS_PER_CONFIGMAP} per ConfigMap: none of its keys is used (split it)`,
    );
    expect(idx.allRejections()).toHaveLength(1);
  });

  it('a ConfigMap over 1 MiB is rejected as a whole; a network ConfigMap too, and registrations on its networks say why', () => {
    const idx = index();
    const pad = 'x'.repeat(200 * 1024);
    const data: Record<string, string> = { a: `network: big\nip: 10.64.0.10\n# ${pad}` };
    for (let i = 0; i < 5; i++) data[`pad${i}`] = `# ${pad}`;
    idx.applyConfigMap(configMap('ns', 'fat', 'registration', data));
    expect(rejected(idx.lookup('ns', 'a', 'big')).message).toMatch(new RegExp(`^configmap ns/fat key "a": field "data": holds \\d+ bytes; the limit is ${MAX_CONFIGMAP_BYTES} per ConfigMap`));
    idx.applyConfigMap(configMap('sriov-underlay', 'more-nets', 'network', { wide: BIG_NET, ...data }));
    expect(idx.network('wide')).toBeUndefined();
    idx.applyConfigMap(configMap('ns', 'r', 'registration', { w: 'network: wide\nip: 10.64.0.11' }));
    expect(rejected(idx.lookup('ns', 'w', 'wide')).message).toMatch(/^configmap ns\/r key "w": field "network": network "wide" is itself rejected: configmap sriov-underlay\/more-nets: field "data": holds/);
    expect(idx.networkRejectionsOf('sriov-underlay', 'more-nets')).toHaveLength(1);
  });
});
