/**
 * Registrations (issue 5 figures):
 * - CNI → agent lookup p99: the CNI client's round trip (fresh connection, JSON both ways, answer
 *   validated) to an agent whose index holds 10,000 registrations; and, for information, the same
 *   with the IP claim written to the fake API server (what an ADD really waits for).
 * - agent RSS with 10,000 registrations across 500 ConfigMaps: the shipped daemon running the agent
 *   alone (dist/bin/sriov-underlay-node --components agent), listing from the fake API server,
 *   measured from /proc after it is ready, without and with the DaemonSet's NODE_OPTIONS.
 * - time from a registration edit to it being served: ConfigMap written to the API server → the
 *   agent's socket answers with it.
 * Run: npm run bench -- registrations (or bundle this file with esbuild and run it with node).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentLookup, answerToPodSettings } from '../cni/agent-client';
import { startCniSocket } from '../node/agent/cni-socket';
import { lookupHandler } from '../node/agent/lookup';
import { loadKubeConfig, makeKubeClients } from '../src/kube/client';
import { silentLogger } from '../src/log';
import { RegistrationIndex } from '../src/registrations/index';
import type { ConfigMapObject } from '../src/registrations/types';
import { startFakeKube } from '../test/fakes/kube-apiserver';
import { fmt, measured, table } from './lib/report';
import { summarize } from './lib/stats';

const CONFIGMAPS = 500;
const KEYS_PER_CM = 20; // 10,000 registrations
const LOOKUPS = 3000;
const EDITS = 20;

const NETWORK = 'vlan: 100\nsubnet: 10.64.0.0/10\ngateway: 10.64.0.1\nqos: {maxTxRateMbps: 1000}\nresourceName: sriov-underlay.io/vf-pool-a';

function regData(cm: number): Record<string, string> {
  const data: Record<string, string> = {};
  for (let k = 0; k < KEYS_PER_CM; k++) {
    const i = cm * KEYS_PER_CM + k;
    const j = i + 2; // past the network address and the gateway
    data[`pod-${i}`] = `network: bench\nip: 10.${64 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}\nqos: {maxTxRateMbps: ${100 + (i % 900)}}`;
  }
  return data;
}

function cmObjects(): ConfigMapObject[] {
  const out: ConfigMapObject[] = [
    { metadata: { namespace: 'sriov-underlay', name: 'networks', resourceVersion: '1', labels: { 'sriov-underlay.io/kind': 'network' } }, data: { bench: NETWORK } },
  ];
  for (let c = 0; c < CONFIGMAPS; c++) {
    out.push({ metadata: { namespace: `ns-${c % 50}`, name: `regs-${c}`, resourceVersion: String(c + 2), labels: { 'sriov-underlay.io/kind': 'registration' } }, data: regData(c) });
  }
  return out;
}

function line(label: string, value: number, unit: 'ms' | 'MB', goal?: number): string[] {
  const f = measured(label, value, unit);
  return [label, fmt(f), goal === undefined ? '' : `≤ ${goal} ${unit}`, goal === undefined ? '' : f.value <= goal ? 'met' : 'MISSED'];
}

const REPO = path.resolve(__dirname, '..', '..');
const DAEMON = path.join(REPO, 'dist', 'bin', 'sriov-underlay-node');
/** What deploy/40-daemonset.yaml sets (a smaller V8 young generation; read at process start only). */
/** For comparison only: deploy/40-daemonset.yaml sets no NODE_OPTIONS (node would reject the code cache). */
const COMPARE_NODE_OPTIONS = '--max-semi-space-size=1';

function status(pid: number): { rss: number; anon: number; file: number; hwm: number } {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (k: string) => (Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)![1]) * 1024) / 1e6;
  return { rss: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile'), hwm: mb('VmHWM') };
}

/**
 * The shipped daemon running the agent alone (dist/bin/sriov-underlay-node --components agent),
 * ready once it logs "node agent ready" with the expected registration count; RSS is read after the
 * start-up burst has settled.
 */
async function spawnAgent(kubeconfig: string, sock: string, stateDir: string, expectKeys: number, nodeOptions = '') {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) };
  const args = ['--components', 'agent', '--node-name', 'bench-node', '--kubeconfig', kubeconfig, '--agent-socket', sock, '--release-queue-dir', stateDir, '--pod-resources-socket', '', '--log-level', 'info'];
  const child = spawn(DAEMON, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    const onData = (b: Buffer) => {
      buf += b.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue; // e.g. node's "code cache rejected" warning under NODE_OPTIONS
        const rec = JSON.parse(line) as { msg?: string; registrations?: number; level?: number };
        if (rec.msg !== 'node agent ready') continue;
        child.stderr.off('data', onData);
        child.stderr.resume();
        if (rec.registrations === expectKeys) resolve();
        else reject(new Error(`agent ready with ${rec.registrations} registrations, expected ${expectKeys}`));
      }
    };
    child.stderr.on('data', onData);
    child.on('exit', (c) => reject(new Error(`agent exited ${c}`)));
  });
  // Settled: V8's memory reducer shrinks the heap a few seconds after the start-up burst.
  const samples: number[] = [];
  for (let i = 0; i < 12; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    samples.push(status(child.pid!).rss);
  }
  if (process.env.BENCH_VERBOSE) console.error(`rss samples: ${samples.map((x) => x.toFixed(0)).join(' ')}`);
  const st = status(child.pid!);
  const stop = async () => {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.on('exit', r));
  };
  return { child, ...st, stop };
}

const rssLabel = (what: string, a: { anon: number; file: number; hwm: number }) =>
  `${what} (anon ${a.anon.toFixed(0)} + file ${a.file.toFixed(0)}; peak ${a.hwm.toFixed(0)})`;

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-bench-'));
  const rows: string[][] = [];
  try {
    // 1. Lookup round trip against the index alone.
    const index = new RegistrationIndex();
    index.replaceAll(cmObjects());
    const sock = path.join(tmp, 'lookup.sock');
    const server = await startCniSocket(sock, lookupHandler({ index, log: silentLogger() }), silentLogger());
    const ms: number[] = [];
    for (let i = 0; i < LOOKUPS; i++) {
      const n = (i * 7919) % (CONFIGMAPS * KEYS_PER_CM);
      const t0 = process.hrtime.bigint();
      const s = answerToPodSettings(await agentLookup(sock, { namespace: `ns-${Math.floor(n / KEYS_PER_CM) % 50}`, name: `pod-${n}`, uid: 'u' }));
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!s?.ips?.length) throw new Error(`pod-${n} was not served`);
    }
    await server.close();
    const lk = summarize(ms.slice(100)); // the first connections warm up the JIT
    rows.push(line('CNI → agent lookup p50', lk.p50, 'ms'), line('CNI → agent lookup p99', lk.p99, 'ms', 2));

    // 2. The real agent in its own process, fed by the fake API server.
    const kube = await startFakeKube({ namespaces: ['sriov-underlay', ...Array.from({ length: 50 }, (_, i) => `ns-${i}`)] });
    try {
      const core = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath })).core;
      const [nets, ...regs] = cmObjects();
      await core.createNamespacedConfigMap({ namespace: 'sriov-underlay', body: { metadata: { name: 'networks', labels: nets!.metadata!.labels! }, data: nets!.data! } });
      if (!fs.existsSync(DAEMON)) throw new Error(`${DAEMON} not built yet (npm run build)`);
      // The same agent with no registrations: what node, client-node and the rest cost before the index.
      const empty = await spawnAgent(kube.kubeconfigPath, path.join(tmp, 'empty.sock'), path.join(tmp, 'state0'), 0);
      rows.push(line(rssLabel('agent RSS, no registrations', empty), empty.rss, 'MB'));
      await empty.stop();
      for (const cm of regs) {
        await core.createNamespacedConfigMap({ namespace: cm.metadata!.namespace!, body: { metadata: { name: cm.metadata!.name!, labels: cm.metadata!.labels! }, data: cm.data! } });
      }
      const n = CONFIGMAPS * KEYS_PER_CM;
      const plain = await spawnAgent(kube.kubeconfigPath, path.join(tmp, 'plain.sock'), path.join(tmp, 'state1'), n);
      rows.push(line(rssLabel(`agent RSS, ${n} registrations / ${CONFIGMAPS} ConfigMaps (as deployed)`, plain), plain.rss, 'MB', 80));
      await plain.stop();
      const agentSock = path.join(tmp, 'agent.sock');
      const agent = await spawnAgent(kube.kubeconfigPath, agentSock, path.join(tmp, 'state'), n, COMPARE_NODE_OPTIONS);
      rows.push(line(rssLabel(`agent RSS, same, NODE_OPTIONS=${COMPARE_NODE_OPTIONS} (comparison)`, agent), agent.rss, 'MB'));

      // ADD as it really is: lookup + IP claim created on the API server.
      const add: number[] = [];
      for (let i = 0; i < 300; i++) {
        const t0 = process.hrtime.bigint();
        await agentLookup(agentSock, { namespace: `ns-${Math.floor(i / KEYS_PER_CM) % 50}`, name: `pod-${i}`, uid: `uid-${i}`, containerId: `c${i}`, ifName: 'net1' });
        add.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const a = summarize(add.slice(20));
      rows.push(line('lookup + IP claim (fake API) p50', a.p50, 'ms'), line('lookup + IP claim (fake API) p99', a.p99, 'ms'));

      // 3. Edit → served.
      const edit: number[] = [];
      for (let e = 0; e < EDITS; e++) {
        const name = `edit-${e}`;
        const data = { ...regData(0), [name]: `network: bench\nip: 10.127.0.${e + 10}` };
        const t0 = process.hrtime.bigint();
        await core.replaceNamespacedConfigMap({ namespace: 'ns-0', name: 'regs-0', body: { metadata: { name: 'regs-0', labels: { 'sriov-underlay.io/kind': 'registration' } }, data } });
        for (;;) {
          const ans = await agentLookup(agentSock, { namespace: 'ns-0', name, uid: `u-${name}`, containerId: `c-${name}`, ifName: 'net1' });
          if (ans.ok && ans.registered) break;
        }
        edit.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const ed = summarize(edit);
      rows.push(line('registration edit → served p50', ed.p50, 'ms'), line('registration edit → served max', ed.max, 'ms', 1000));
      await agent.stop();
    } finally {
      await kube.close();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`registrations (${os.cpus().length} cores)`);
  console.log(table(['figure', 'value', 'goal', ''], rows));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
