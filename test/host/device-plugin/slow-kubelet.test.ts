/**
 * A loaded kubelet, slow to answer registrations: the daemon must register each pool exactly once,
 * with exactly one ListAndWatch stream feeding kubelet, however long kubelet takes. The fake kubelet
 * handles a registration it was asked for even after the caller gave up (as kubelet does), and a
 * second registration leaves the first stream running (as released kubelets do), so any retry
 * before kubelet answered shows up here as a second registration and a second stream.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { harness, pfSpecs, type Harness } from './harness';

const FAST = 'sriov-underlay.io/fast';
const REST = 'sriov-underlay.io/rest';
const POOLS = {
  resourceList: [
    { resourceName: 'fast', selectors: { pfNames: ['dpp0#0-1'] } },
    { resourceName: 'rest', selectors: { pfNames: ['dpp0#2-3'] } },
  ],
};

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The daemon registered with a (so far quick) kubelet, safety rescans every 100 ms. */
async function registered(mode: 'legacy' | 'plugin-watcher'): Promise<Harness> {
  const hh = await harness({ mode, pfs: pfSpecs(1, 4), config: POOLS });
  h = hh;
  await hh.startDaemon({ registryRescanMs: 100 });
  await hh.kubelet.waitFor('first registration', () => hh.kubelet.devices(FAST)?.length === 2 && hh.kubelet.devices(REST)?.length === 2);
  return hh;
}

/** After a restart of a kubelet that takes `delayMs` per registration: one registration, one stream, per pool. */
async function expectOneRegistrationEach(hh: Harness, delayMs: number, since: { calls: number; records: number }, settleMs: number): Promise<void> {
  const k = hh.kubelet;
  const resources = [FAST, REST];
  const seen = () =>
    `Register calls: ${k.registerCalls - since.calls}, accepted: ${k.registrations.slice(since.records).filter((r) => r.accepted).length}, ` +
    `streams: ${resources.map((r) => `${r}=${k.liveStreams(r)}`).join(' ')}, daemon: ${JSON.stringify(hh.daemon.pools().map((p) => p.registered))}`;
  await k
    .waitFor(
      'both pools registered and streaming again',
      () => resources.every((r) => k.liveStreams(r) >= 1 && k.devices(r)?.length === 2) && hh.daemon.pools().every((p) => p.registered),
      delayMs * 2 + 10_000,
    )
    .catch((e: Error) => {
      throw new Error(`${e.message} (${seen()})`);
    });
  // Safety rescans of the socket directory (every 100 ms here) must not register again either.
  await sleep(settleMs);
  const accepted = k.registrations.slice(since.records).filter((r) => r.accepted);
  for (const r of resources) {
    expect(accepted.filter((a) => a.resource === r), `accepted registrations of ${r}`).toHaveLength(1);
    expect(k.liveStreams(r), `ListAndWatch streams kubelet holds for ${r}`).toBe(1);
    expect(hh.daemon.server(r)?.streamCount, `ListAndWatch streams the daemon serves for ${r}`).toBe(1);
    expect(k.devices(r)?.every((d) => d.health === 'Healthy')).toBe(true);
  }
  if (k.mode === 'legacy') expect(k.registerCalls - since.calls, 'Register calls kubelet received').toBe(resources.length);
  expect(k.registrations.slice(since.records).every((r) => r.accepted)).toBe(true);
}

for (const mode of ['legacy', 'plugin-watcher'] as const) {
  describe(`slow kubelet (${mode})`, () => {
    it('after a kubelet restart with registrations taking 5 s: exactly one registration and one stream per pool', async () => {
      const hh = await registered(mode);
      const k = hh.kubelet;
      k.registerDelayMs = 5_000;
      await k.restart();
      await expectOneRegistrationEach(hh, 5_000, { calls: k.registerCalls, records: k.registrations.length }, 1_000);
      // Allocate reaches the daemon through the (only) registration.
      const { response } = await k.allocate(FAST, ['0000:81:10.0']);
      expect(response.container_responses).toHaveLength(1);
    });
  });
}

describe('slow kubelet (legacy), more', () => {
  it('a 10 s Register: still one registration and one stream per pool', async () => {
    const hh = await registered('legacy');
    const k = hh.kubelet;
    k.registerDelayMs = 10_000;
    await k.restart();
    await expectOneRegistrationEach(hh, 10_000, { calls: k.registerCalls, records: k.registrations.length }, 500);
  });

  it('kubelet restarts again while a slow Register is in flight: the call ends with the old kubelet, one registration with the new one', async () => {
    const hh = await registered('legacy');
    const k = hh.kubelet;
    k.registerDelayMs = 3_000;
    await k.restart();
    const calls = k.registerCalls;
    await k.waitFor('Register sent to the restarted kubelet', () => k.registerCalls >= calls + 2);
    await k.restart(); // the first restarted kubelet never answers: it is gone
    await expectOneRegistrationEach(hh, 3_000, { calls: k.registerCalls, records: k.registrations.length }, 500);
  });
});
