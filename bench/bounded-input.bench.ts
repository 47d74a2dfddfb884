/**
 * Bounded input (issue 10, item 5): a registration with 50,000 addresses applied through the fake
 * API server to a running node agent (in this process: its event loop is the one the device
 * plugin's gRPC and /metrics share in the daemon), then an unrelated pod's lookup on the agent's
 * socket. Printed: time from the write to that answer, and the longest event-loop stall while the
 * agent took the ConfigMap in, against a one-key registration measured the same way in this run.
 * Goal: ≤ 1 s, and the agent answers (alive).
 *
 * Shapes: the 50,000 addresses in one key (rejected unparsed: over the per-key size limit), and
 * split into 50 StatefulSet keys of 1,000 (each within the limits: parsed in slices, indexed,
 * conflict-checked), with the slowest lookup answered while the agent takes it in.
 * Run: npm run bench -- bounded
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { agentLookup, answerToPodSettings } from '../cni/agent-client';
import { startAgent } from '../node/agent/agent';
import { loadKubeConfig, makeKubeClients } from '../src/kube/client';
import { silentLogger } from '../src/log';
import { startFakeKube } from '../test/fakes/kube-apiserver';
import { compareLine, fmt, measured, table, type Figure } from './lib/report';

const ADDRESSES = 50_000;
const KIND = 'sriov-underlay.io/kind';
const v4 = (from: number, n: number) => Array.from({ length: n }, (_, k) => {
  const i = from + k + 2;
  return `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
});

async function main(): Promise<void> {
  const kube = await startFakeKube({ namespaces: ['sriov-underlay', 'bench', 'app'] });
  const clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-bounded-'));
  const put = (namespace: string, name: string, kind: string, data: Record<string, string>) =>
    clients.core.createNamespacedConfigMap({ namespace, body: { metadata: { name, namespace, labels: { [KIND]: kind } }, data } });
  await put('sriov-underlay', 'networks', 'network', { big: 'subnet: 10.64.0.0/10\ngateway: 10.64.0.1\nresourceName: sriov-underlay.io/vf-pool-a' });
  await put('app', 'regs', 'registration', { unrelated: 'network: big\nip: 10.127.255.1' });
  const agent = await startAgent({ nodeName: 'bench', log: silentLogger(), kubeconfig: kube.kubeconfigPath, socketPath: path.join(dir, 'agent.sock'), releaseQueueDir: path.join(dir, 'release-queue'), podResourcesSocket: null });

  const ask = async () => {
    const t = performance.now();
    const a = answerToPodSettings(await agentLookup(agent.socketPath, { namespace: 'app', name: 'unrelated', uid: 'u', network: 'big' }));
    if (a?.ips?.[0] !== '10.127.255.1/10') throw new Error(`the unrelated lookup got ${JSON.stringify(a)}`);
    return performance.now() - t;
  };
  /**
   * Write the ConfigMap; while the agent takes it in, look the unrelated pod up every 20 ms (the
   * slowest answer is what a CNI ADD arriving then waits); once the index has it, look up once more.
   */
  const run = async (label: string, name: string, data: Record<string, string>) => {
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const gen = agent.index.generation;
    const t0 = performance.now();
    await put('bench', name, 'registration', data);
    let during = 0;
    while (agent.index.generation === gen) {
      during = Math.max(during, await ask());
      await new Promise((r) => setTimeout(r, 20));
    }
    await ask();
    const ms = performance.now() - t0;
    loop.disable();
    const rejected = agent.index.rejectionsOf('bench', name);
    return {
      label,
      total: measured(label, ms, 'ms'),
      during: measured(`${label} during`, during, 'ms'),
      stall: measured(`${label} stall`, loop.max / 1e6, 'ms'),
      rejected,
    };
  };

  const ref = await run('one key, 1 address', 'small', { web: 'network: big\nip: 10.64.0.2' });
  const oneKey = await run(`one key, ${ADDRESSES} addresses`, 'huge', { db: `network: big\nips: [${v4(0, ADDRESSES).join(', ')}]` });
  const split: Record<string, string> = {};
  for (let s = 0; s < ADDRESSES / 1000; s++) split[`sts${s}`] = `network: big\nips: [${v4(1000 + s * 1000, 1000).join(', ')}]`;
  const splitRun = await run(`50 keys × 1,000 addresses`, 'split', split);

  const rows: string[][] = [];
  for (const r of [ref, oneKey, splitRun]) {
    rows.push([r.label, fmt(r.total), fmt(r.during), fmt(r.stall), r.rejected.length ? r.rejected[0]!.message.slice(0, 80) : 'accepted']);
  }
  process.stdout.write(`\nbounded input: registration written → indexed → unrelated lookup answered (agent in this process)\n`);
  process.stdout.write(`${table(['ConfigMap', 'write → indexed+answer', 'slowest answer meanwhile', 'longest loop stall', 'verdict'], rows)}\n\n`);
  const line = (metric: string, f: Figure, ref: Figure) => compareLine(metric, f, ref, { max: 1000 });
  process.stdout.write(`${line('write→answer', oneKey.total, ref.total)}   (${oneKey.label})\n`);
  process.stdout.write(`${line('write→answer', splitRun.total, ref.total)}   (${splitRun.label})\n`);
  process.stdout.write(`${line('answer during', splitRun.during, ref.during)}   (${splitRun.label}: a lookup while it is indexed)\n`);
  process.stdout.write(`agent alive after both: ${(await agentLookup(agent.socketPath, { namespace: 'app', name: 'unrelated', uid: 'u', network: 'big' })).ok ? 'yes' : 'NO'}\n`);
  await agent.stop();
  await kube.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bounded-input bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
