import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { harness, pfSpecs, type Harness } from './harness';

const POOLS = {
  resourceList: [
    { resourceName: 'fast', selectors: { pfNames: ['dpp0#0-1'] } },
    { resourceName: 'rest', selectors: { vendors: ['8086'], devices: ['10ca'], pfNames: ['dpp0#2-7', 'dpp1'] } },
  ],
};

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

for (const mode of ['legacy', 'plugin-watcher'] as const) {
  describe(`registration (${mode})`, () => {
    it('registers every pool and streams its devices', async () => {
      h = await harness({ mode, pfs: pfSpecs(2, 3), config: POOLS });
      await h.startDaemon();
      const k = h.kubelet;
      await k.waitFor('both pools streaming', () => k.devices('sriov-underlay.io/fast') !== null && k.devices('sriov-underlay.io/rest') !== null);
      expect(k.registrations.filter((r) => r.accepted).map((r) => r.resource).sort()).toEqual(['sriov-underlay.io/fast', 'sriov-underlay.io/rest']);
      expect(k.plugins.get('sriov-underlay.io/fast')?.options).toEqual({ pre_start_required: false, get_preferred_allocation_available: true });
      // dpp0 VFs 0 and 1 go to "fast", the other four to "rest".
      expect(k.devices('sriov-underlay.io/fast')).toEqual([
        { ID: '0000:81:10.0', health: 'Healthy', topology: { nodes: [{ ID: 0 }] } },
        { ID: '0000:81:10.1', health: 'Healthy', topology: { nodes: [{ ID: 0 }] } },
      ]);
      expect(k.devices('sriov-underlay.io/rest')?.map((d) => d.ID)).toEqual(['0000:81:10.2', '0000:82:10.0', '0000:82:10.1', '0000:82:10.2']);
      await k.waitFor('registered state', () => h!.daemon.pools().every((p) => p.registered));
    });

    it('re-registers after kubelet restarts and wipes its directory', async () => {
      h = await harness({ mode, pfs: pfSpecs(1, 2), config: { resourceList: [{ resourceName: 'vf' }] } });
      await h.startDaemon({ registryRescanMs: 60_000 }); // only the directory watch may bring it back
      const k = h.kubelet;
      await k.waitFor('first registration', () => k.devices('sriov-underlay.io/vf')?.length === 2);
      const before = k.registrations.length;
      await k.restart();
      expect(k.plugins.size).toBe(0);
      await k.waitFor('re-registration after restart', () => k.registrations.length > before && k.devices('sriov-underlay.io/vf')?.length === 2);
      expect(k.registrations.at(-1)).toMatchObject({ resource: 'sriov-underlay.io/vf', accepted: true });
      expect(k.plugins.get('sriov-underlay.io/vf')?.streamOpen).toBe(true);
    });

    it('retries a refused registration with backoff until kubelet accepts', async () => {
      h = await harness({ mode, pfs: pfSpecs(1, 2), config: { resourceList: [{ resourceName: 'vf' }] } });
      let refusals = 3;
      h.kubelet.admit = () => (refusals-- > 0 ? 'resource busy (test refusal)' : null);
      await h.startDaemon();
      const k = h.kubelet;
      await k.waitFor('acceptance after refusals', () => k.registrations.some((r) => r.accepted));
      const refused = k.registrations.filter((r) => !r.accepted);
      expect(refused).toHaveLength(3);
      expect(refused[0]?.error).toBe('resource busy (test refusal)');
      // Backoff: the gaps between attempts grow.
      const at = k.registrations.map((r) => r.at);
      expect(at[3]! - at[2]!).toBeGreaterThan(at[1]! - at[0]!);
      await k.waitFor('devices after acceptance', () => k.devices('sriov-underlay.io/vf')?.length === 2);
    });
  });
}

describe('registration (legacy) with kubelet absent at first', () => {
  it('registers once kubelet creates its socket', async () => {
    h = await harness({ mode: 'legacy', pfs: pfSpecs(1, 1), config: { resourceList: [{ resourceName: 'vf' }] }, startKubelet: false });
    await h.startDaemon({ registryRescanMs: 60_000 });
    expect(h.daemon.pools()[0]?.registered).toBe(false);
    expect(fs.existsSync(h.kubelet.checkpointPath)).toBe(false);
    await h.kubelet.start();
    await h.kubelet.waitFor('registration', () => h!.kubelet.devices('sriov-underlay.io/vf')?.length === 1);
  });
});

describe('registration (plugin-watcher) socket removed', () => {
  it('re-creates its socket and kubelet registers it again', async () => {
    h = await harness({ mode: 'plugin-watcher', pfs: pfSpecs(1, 1), config: { resourceList: [{ resourceName: 'vf' }] } });
    await h.startDaemon({ registryRescanMs: 60_000 });
    const k = h.kubelet;
    await k.waitFor('registration', () => k.devices('sriov-underlay.io/vf')?.length === 1);
    const socket = h.daemon.server('sriov-underlay.io/vf')!.socketPath;
    fs.rmSync(socket);
    // The daemon's directory watch re-creates it; kubelet's watcher sees a new socket.
    await k.waitFor('registered again', () => k.registrations.filter((r) => r.accepted).length === 2);
    await k.waitFor('streaming again', () => k.plugins.get('sriov-underlay.io/vf')?.streamOpen === true && k.devices('sriov-underlay.io/vf')?.length === 1);
    expect(fs.existsSync(socket)).toBe(true);
  });
});
