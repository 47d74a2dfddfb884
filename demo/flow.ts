/**
 * The demo itself, the same on both platforms (host: emulated VFs; VM: real igbvf VFs):
 * fake API server with configmaps/, node daemon (device plugin + node agent components) against the fake
 * kubelet, three pods scheduled the way kubelet and Multus do it (Allocate, then CNI ADD with the
 * pod's CNI_ARGS), what each pod got, connectivity and isolation, teardown and the VFs restored.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FakeKubelet } from '../test/fakes/kubelet';
import { IPCLAIMS, loadKubeConfig, makeKubeClients, SRIOV_NODE_STATES, type KubeClients } from '../src/kube/client';
import { RegistrationIndex } from '../src/registrations/index';
import type { ResolvedSettings } from '../src/registrations/types';
import { readVf } from '../src/sysfs/pci';
import { poolResources, type CmFile } from './configmaps';
import { execCni, startFakeApi, startNodeDaemon } from './processes';
import { servedByInLog, startCniServer } from '../test/fixtures/cni-server-process';
import { renderTable } from './table';
import type { Teardown } from './teardown';

export interface Platform {
  mode: 'host' | 'vm';
  repo: string;
  /** Prefix of every netns the demo creates. */
  tag: string;
  workDir: string;
  sysfsRoot: string;
  /** What is loaded into the API server (after the platform's derivations). */
  networks: CmFile;
  registrations: CmFile;
  /** The pools ConfigMap of configmaps/ (its metadata) and the pools config for this machine. */
  pools: CmFile;
  poolsText: string;
  /** The registrations the table reports as registered (host: configmaps/ as written). */
  registered: { networks: CmFile; registrations: CmFile };
  /** Lines explaining every derivation, printed before anything starts. */
  notes: string[];
  /** Who enforces the registered VLAN / rates on this platform, and why (one line). */
  enforcement: { vlan: string; qos: string; explain: string };
  cniPath: string;
  /** iproute2 (the user-facing view: an oracle independent of our netlink layer). */
  ip(...args: string[]): Promise<string>;
  ping(netns: string, addr: string): Promise<boolean>;
  /** VM: the PF's VF lines from `ip -d link show <pf>`. */
  vfLines?(pf: string): Promise<string[]>;
}

export const POD_NAMESPACE = 'demo';
export const PODS = ['app-a', 'app-b', 'app-c'];
const NODE = 'demo-node';

type Out = (line: string) => void;

interface PodRun {
  name: string;
  uid: string;
  netns: string;
  containerId: string;
  resource: string;
  deviceID: string;
  podUidAtKubelet: string;
  registered: ResolvedSettings;
  netconf: Record<string, unknown>;
  env: Record<string, string>;
  result: Record<string, unknown>;
  added: boolean;
  /** net1 in the pod after ADD, as iproute2 sees it. */
  inPod?: { name: string; mac: string; mtu: number };
}

interface VfState {
  pci: string;
  pf: string;
  vfIndex: number;
  name: string;
  mac: string;
  mtu: number;
  line?: string;
}

async function step<T>(out: Out, what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const r = await fn();
  out(`  ✓ ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return r;
}

async function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The registrations as written, resolved by the project's own index (what the agent serves). */
function registeredSettings(p: Platform): Map<string, ResolvedSettings> {
  const index = new RegistrationIndex();
  index.replaceAll([p.registered.networks, p.registered.registrations]);
  const out = new Map<string, ResolvedSettings>();
  for (const pod of PODS) {
    const r = index.lookup(POD_NAMESPACE, pod);
    if (r.kind !== 'resolved') throw new Error(`configmaps/: pod ${POD_NAMESPACE}/${pod} is ${r.kind === 'rejected' ? r.rejection.message : 'not registered'}`);
    out.set(pod, r.settings);
  }
  return out;
}

interface ClaimView {
  name: string;
  spec: { network: string; ip: string; kind?: string; pod?: { namespace?: string; name?: string; uid?: string } };
}

/** The cluster-wide IP claims (IPClaim objects in the API server). */
async function listClaims(custom: KubeClients['custom']): Promise<ClaimView[]> {
  const list = (await custom.listClusterCustomObject({ group: IPCLAIMS.group, version: IPCLAIMS.version, plural: IPCLAIMS.plural })) as {
    items: Array<{ metadata: { name: string }; spec: ClaimView['spec'] }>;
  };
  return list.items.map((c) => ({ name: c.metadata.name, spec: c.spec }));
}

const claimLine = (c: ClaimView) =>
  `${c.name}: ${c.spec.ip} (${c.spec.kind ?? '?'}), ${c.spec.pod?.uid ? `held by pod ${c.spec.pod.namespace}/${c.spec.pod.name}` : `reserved for ${c.spec.pod?.namespace}/${c.spec.pod?.name}, no pod yet`}`;
const ofDemoPod = (c: ClaimView) => c.spec.pod?.namespace === POD_NAMESPACE && PODS.includes(c.spec.pod.name ?? '') && !!c.spec.pod.uid;

async function vfStates(p: Platform, pcis: string[]): Promise<VfState[]> {
  const lines = new Map<string, string[]>();
  const out: VfState[] = [];
  for (const pci of pcis) {
    const vf = readVf(p.sysfsRoot, pci);
    const name = vf.netdevs[0];
    if (!name) throw new Error(`VF ${pci} has no netdev on the host`);
    const [link] = JSON.parse(await p.ip('-j', 'link', 'show', 'dev', name)) as Array<{ ifname: string; address: string; mtu: number }>;
    const pf = vf.pfNetdev ?? '?';
    const s: VfState = { pci, pf, vfIndex: vf.vfIndex, name: link!.ifname, mac: link!.address, mtu: link!.mtu };
    if (p.vfLines) {
      if (!lines.has(pf)) lines.set(pf, await p.vfLines(pf));
      s.line = lines.get(pf)!.find((l) => l.startsWith(`vf ${vf.vfIndex} `));
    }
    out.push(s);
  }
  return out;
}

function cniErr(call: { code: number | null; stdout: string; stderr: string }): string {
  return `exit ${call.code}: ${call.stdout.trim() || call.stderr.trim()}`;
}

/** The source the CNI logged for an ADD (its pino line), i.e. what the agent answered it. */
function sourceFromLog(logFile: string, containerId: string): string | undefined {
  if (!fs.existsSync(logFile)) return undefined;
  for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
    try {
      const j = JSON.parse(line) as { msg?: string; source?: string; container?: string };
      if (j.msg === 'ADD' && j.container === containerId && j.source) return j.source;
    } catch {
      /* not a log line */
    }
  }
  return undefined;
}

/** What the demo saw, for the tests that run it. */
export interface DemoSummary {
  pods: number;
  reachable: number;
  isolated: number;
  restored: number;
  vfs: number;
  /** Each pod's VF line on its PF while it ran, with what was registered (only where the PF has them). */
  vfLines: Array<{ pod: string; line: string | undefined; vlan: number | undefined; maxTxRateMbps: number | undefined }>;
  /** Which path served each CNI call (ADDs, then DELs): `server` or `fallback:<reason>`. */
  servedBy: string[];
}

/** "served by …" for one call, from the marker its log lines carry; recorded in `seen`. */
function servedBy(logFile: string, containerId: string, cmd: string, seen: string[]): string {
  const marks = [...new Set(servedByInLog(logFile, { container: containerId, cmd }))];
  const what = marks.length ? marks.join(' + ') : 'unmarked';
  seen.push(what);
  return `served by ${what}`;
}

export async function runDemo(p: Platform, out: Out, teardown: Teardown): Promise<DemoSummary> {
  // What kubelet execs: the shim, which forwards to the CNI server or execs the standalone beside it.
  const cniBin = path.join(p.repo, 'dist/bin/sriov-underlay');
  const nodeBin = path.join(p.repo, 'dist/bin/sriov-underlay-node');
  for (const b of [cniBin, path.join(p.repo, 'dist/bin/sriov-underlay-cni'), nodeBin]) if (!fs.existsSync(b)) throw new Error(`${b} is missing: run \`npm run build\``);
  for (const n of p.notes) out(`note: ${n}`);
  const registered = registeredSettings(p);
  const logs = path.join(p.workDir, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  out(`logs: ${logs}`);

  out('\n[1/6] control plane');
  const kubeconfig = path.join(p.workDir, 'kubeconfig');
  const api = await step(out, 'fake kube-apiserver (test/fakes/kube-apiserver, standalone)', () => startFakeApi(p.repo, kubeconfig, path.join(logs, 'apiserver.log')));
  teardown.push('stop the fake API server', () => api.stop());
  out(`    ${api.url}, kubeconfig ${kubeconfig}`);
  const { core, custom } = makeKubeClients(loadKubeConfig({ kubeconfig }));
  for (const ns of ['sriov-underlay', POD_NAMESPACE]) await core.createNamespace({ body: { metadata: { name: ns } } });
  // The pools ConfigMap as this machine needs it (selectors renamed): the daemon reads the same text.
  const poolsCm: CmFile = { ...p.pools, data: { 'pools.yaml': p.poolsText } };
  for (const cm of [p.networks, p.registrations, poolsCm]) {
    const body = { metadata: { name: cm.metadata!.name!, namespace: cm.metadata!.namespace!, labels: cm.metadata!.labels ?? {} }, data: cm.data ?? {} };
    const made = await core.createNamespacedConfigMap({ namespace: body.metadata.namespace, body });
    out(`  ✓ loaded configmap ${body.metadata.namespace}/${body.metadata.name} @ resourceVersion ${made.metadata?.resourceVersion} (keys: ${Object.keys(body.data).join(', ')})`);
  }

  out('\n[2/6] node daemon: device plugin + node agent');
  const poolsDir = path.join(p.workDir, 'pools');
  fs.mkdirSync(poolsDir, { recursive: true });
  // The pools ConfigMap, mounted as a directory the way kubelet projects a ConfigMap volume.
  fs.writeFileSync(path.join(poolsDir, 'pools.yaml'), p.poolsText);
  const kubelet = new FakeKubelet(path.join(p.workDir, 'kubelet'), 'legacy');
  await kubelet.start();
  teardown.push('stop the fake kubelet', () => kubelet.stop());
  const agentSocket = path.join(p.workDir, 'agent.sock');
  const stateDir = path.join(p.workDir, 'cni-state');
  const releaseQueueDir = path.join(p.workDir, 'release-queue');
  const args = [
    '--components', 'device-plugin,agent',
    '--kubelet-dir', kubelet.dir,
    '--sysfs-root', p.sysfsRoot,
    '--config', path.join(poolsDir, 'pools.yaml'),
    '--devinfo-dir', path.join(p.workDir, 'devinfo'),
    '--registration-mode', 'legacy',
    '--metrics-address', '',
    '--log-level', 'info',
    '--node-name', NODE,
    '--kubeconfig', kubeconfig,
    '--agent-socket', agentSocket,
    '--release-queue-dir', releaseQueueDir,
    '--pod-resources-socket', '', // the pods come with a deviceID from Allocate (secondary network)
  ];
  const daemon = startNodeDaemon(nodeBin, args, path.join(logs, 'node.log'));
  teardown.push('stop the node daemon', () => daemon.stop());
  out(`    dist/bin/sriov-underlay-node ${args.join(' ')}`);
  // The CNI server: the same executable with only the cni-server component, in a process of its own
  // (its own container in the DaemonSet). kubelet's (here: the demo's) CNI calls exec the shim,
  // which forwards them to it. SRIOV_UNDERLAY_TEST_CNI=fallback (the test matrix) leaves it down:
  // the shim then execs the standalone CNI, and the demo says so for each call.
  const cniSocket = path.join(p.workDir, 'cni-server', 'cni.sock');
  if (process.env.SRIOV_UNDERLAY_TEST_CNI === 'fallback') {
    out(`  - CNI server left down (SRIOV_UNDERLAY_TEST_CNI=fallback): every call takes the shim's fallback`);
  } else {
    const cniServer = await step(out, `CNI server (--components cni-server) greeting on ${cniSocket}`, () =>
      startCniServer({ socket: cniSocket, logFile: path.join(logs, 'cni-server.log'), bin: nodeBin, args: ['--log-level=info'], readyMs: 60_000 }),
    );
    teardown.push('stop the CNI server', () => cniServer.stop());
  }
  const resources = poolResources(p.poolsText);
  await step(out, `device plugin registered ${resources.join(', ')} with the (fake) kubelet`, () =>
    waitFor('every pool registered and streaming', () => {
      if (daemon.child.exitCode !== null) throw new Error(`the node daemon exited with ${daemon.child.exitCode} (log: ${logs}/node.log)`);
      return resources.every((r) => kubelet.devices(r) !== null);
    }, 60_000),
  );
  const needed = [...new Set(PODS.map((pod) => registered.get(pod)!.resourceName))];
  await waitFor('VFs in the pools the pods need', () => needed.every((r) => kubelet.healthyIds(r).length > 0), 30_000);
  for (const r of resources) out(`    ${r}: ${kubelet.healthyIds(r).length} healthy VF(s) ${kubelet.healthyIds(r).join(' ')}`);
  await step(out, `node agent: registrations indexed, serving ${agentSocket}`, () =>
    waitFor('the agent socket', () => {
      if (daemon.child.exitCode !== null) throw new Error(`the node daemon exited with ${daemon.child.exitCode} (log: ${logs}/node.log)`);
      return fs.existsSync(agentSocket);
    }, 60_000),
  );

  const nodeState = async () => {
    try {
      return (await custom.getClusterCustomObject({ group: SRIOV_NODE_STATES.group, version: SRIOV_NODE_STATES.version, plural: SRIOV_NODE_STATES.plural, name: NODE })) as {
        status?: { pools?: Array<{ resourceName: string; capacity: number; allocatable: number; allocated: number; pfs?: Array<{ name: string }> }> };
      };
    } catch {
      return undefined;
    }
  };
  await waitFor('SriovNodeState', async () => (await nodeState())?.status?.pools !== undefined, 15_000).catch(() => undefined);
  const published = (await nodeState())?.status?.pools;
  if (published) {
    out(`    SriovNodeState ${NODE} (published by the agent from the device plugin's pools):`);
    for (const pool of published) out(`      ${pool.resourceName}: capacity ${pool.capacity}, allocatable ${pool.allocatable}, allocated ${pool.allocated}${pool.pfs?.length ? `, PFs ${pool.pfs.map((f) => f.name).join(' ')}` : ''}`);
  } else {
    out(`  ! SriovNodeState ${NODE} not published within 15 s`);
  }

  const allVfs = [...new Set(resources.flatMap((r) => kubelet.healthyIds(r)))].sort();
  const before = await vfStates(p, allVfs);

  out('\n[3/6] scheduling three pods: Allocate (kubelet → device plugin, gRPC), then CNI ADD (as Multus, through the shim)');
  const pods: PodRun[] = [];
  const summaryServed: string[] = [];
  const cniLog = path.join(logs, 'cni.log');
  for (const name of PODS) {
    teardown.check();
    const reg = registered.get(name)!;
    const network = reg.network;
    const resource = reg.resourceName;
    const created = await core.createNamespacedPod({
      namespace: POD_NAMESPACE,
      body: { metadata: { name, namespace: POD_NAMESPACE }, spec: { nodeName: NODE, containers: [{ name: 'app', image: 'demo' }] } },
    });
    const uid = created.metadata!.uid!;
    // kubelet offers only the healthy devices no other pod holds.
    const offered = kubelet.healthyIds(resource).filter((id) => !pods.some((q) => q.deviceID === id));
    const [pick] = await kubelet.preferred(resource, offered, [], 1);
    const { podUid, response } = await kubelet.allocate(resource, [pick!]);
    const envName = `PCIDEVICE_${resource.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
    const deviceID = response.container_responses[0]?.envs?.[envName];
    if (!deviceID) throw new Error(`Allocate for ${name}: no ${envName} in the answer`);
    const netns = `${p.tag}-${name}`;
    await p.ip('netns', 'add', netns);
    teardown.push(`delete netns ${netns}`, async () => void (await p.ip('netns', 'del', netns).catch(() => '')));
    const containerId = `demo-${name}-${uid.slice(0, 8)}`;
    const netconf: Record<string, unknown> = {
      cniVersion: '1.0.0',
      name: network,
      type: 'sriov-underlay',
      deviceID,
      agentSocket,
      sysfsRoot: p.sysfsRoot,
      stateDir,
      releaseQueueDir,
      logFile: cniLog,
      logLevel: 'info',
    };
    const env = {
      CNI_CONTAINERID: containerId,
      CNI_NETNS: `/var/run/netns/${netns}`,
      CNI_IFNAME: 'net1',
      CNI_PATH: p.cniPath,
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${POD_NAMESPACE};K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=${containerId};K8S_POD_UID=${uid}`,
      // The demo keeps the CNI's state, log and queue (and on the host its sysfs tree) in its work
      // dir: the runtime's environment is where a node allows such paths (docs/cni.md).
      SRIOV_UNDERLAY_PATH_PREFIXES: p.workDir,
      // Where the shim finds the CNI server (a node's default is /run/sriov-underlay-cni/cni.sock).
      SRIOV_UNDERLAY_CNI_SOCKET: cniSocket,
    };
    const run: PodRun = { name, uid, netns, containerId, resource, deviceID, podUidAtKubelet: podUid, registered: reg, netconf, env, result: {}, added: false };
    pods.push(run);
    teardown.push(`CNI DEL ${name}`, async () => {
      if (!run.added) return;
      await execCni(cniBin, 'DEL', env, netconf);
    });
    const t0 = Date.now();
    // From here a DEL is owed, even if ADD is interrupted or fails (DEL is idempotent).
    run.added = true;
    const add = await execCni(cniBin, 'ADD', env, netconf);
    if (add.code !== 0 || !add.json) throw new Error(`CNI ADD for ${name} failed: ${cniErr(add)}`);
    run.result = add.json;
    const ms = Date.now() - t0;
    const [l] = JSON.parse(await p.ip('-n', netns, '-j', 'link', 'show', 'dev', 'net1')) as Array<{ ifname: string; address: string; mtu: number }>;
    run.inPod = { name: l!.ifname, mac: l!.address, mtu: l!.mtu };
    out(`  ✓ ${name}: Allocate(${resource}) → ${deviceID}; ADD in netns ${netns} (${(ms / 1000).toFixed(1)} s, ${servedBy(cniLog, containerId, 'ADD', summaryServed)})`);
  }

  teardown.check();
  out('\n[4/6] what each pod got');
  out('cluster-wide IP claims (IPClaim objects the node agent created in the API server):');
  for (const c of await listClaims(custom)) out(`  ${claimLine(c)}`);
  const vfLineOf = async (pf: string, vfIndex: number) => (p.vfLines ? (await p.vfLines(pf)).find((l) => l.startsWith(`vf ${vfIndex} `)) : undefined);
  const rows: string[][] = [];
  for (const pod of pods) {
    const r = pod.result as { ips?: Array<{ address: string }>; interfaces?: Array<{ name: string; mac?: string; sandbox?: string }> };
    const iface = r.interfaces?.find((i) => i.sandbox);
    const vf = readVf(p.sysfsRoot, pod.deviceID);
    const reg = pod.registered;
    const qos = [reg.maxTxRateMbps !== undefined ? `max ${reg.maxTxRateMbps}` : '', reg.minTxRateMbps !== undefined ? `min ${reg.minTxRateMbps}` : ''].filter(Boolean).join(' / ');
    rows.push([
      `${POD_NAMESPACE}/${pod.name}`,
      (r.ips ?? []).map((i) => i.address).join(' '),
      `${reg.vlan ?? '-'} (${p.enforcement.vlan})`,
      qos ? `${qos} Mb/s (${p.enforcement.qos})` : '-',
      iface?.mac ?? '?',
      String(pod.inPod?.mtu ?? '?'),
      pod.deviceID,
      `${vf.pfNetdev} vf ${vf.vfIndex}`,
      (sourceFromLog(cniLog, pod.containerId) ?? '?').replace(/^configmap /, '').replace(' @ resourceVersion ', ' @ rv '),
    ]);
  }
  for (const line of renderTable(['pod', 'IP(s)', 'VLAN (enforced by)', 'QoS, registered (enforced by)', 'MAC', 'MTU', 'VF', 'PF', 'source ConfigMap @ resourceVersion'], rows)) out(line);
  out(p.enforcement.explain);
  const vfLinesSeen: DemoSummary['vfLines'] = [];
  if (p.vfLines) {
    out('the PF\'s VF lines (ip -d link show), as the driver reports them:');
    for (const pod of pods) {
      const vf = readVf(p.sysfsRoot, pod.deviceID);
      const line = await vfLineOf(vf.pfNetdev!, vf.vfIndex);
      vfLinesSeen.push({ pod: pod.name, line, vlan: pod.registered.vlan, maxTxRateMbps: pod.registered.maxTxRateMbps });
      out(`  ${pod.name}: ${vf.pfNetdev} ${line ?? '(no VF line)'}`);
    }
  }

  teardown.check();
  out('\n[5/6] connectivity');
  const ipv4 = (pod: PodRun) => {
    const ips = (pod.result as { ips?: Array<{ address: string }> }).ips ?? [];
    const a = ips.find((i) => !i.address.includes(':'));
    if (!a) throw new Error(`${pod.name} has no IPv4 address`);
    return a.address.split('/')[0]!;
  };
  const [a, b, c] = pods as [PodRun, PodRun, PodRun];
  const summary: DemoSummary = { pods: pods.length, reachable: 0, isolated: 0, restored: 0, vfs: 0, vfLines: vfLinesSeen, servedBy: summaryServed };
  for (const [from, to] of [[a, b], [b, a]] as const) {
    const ok = await p.ping(from.netns, ipv4(to));
    if (ok) summary.reachable++;
    out(`  ${ok ? 'PASS' : 'FAIL'} ping ${from.name} → ${to.name} (${ipv4(to)}, VLAN ${to.registered.vlan}): ${ok ? 'reachable' : 'NO REPLY'}`);
    if (!ok) throw new Error(`${from.name} cannot reach ${to.name} on the same VLAN`);
  }
  // Routed, app-c could never reach 10.100.0.0/24 (no router here), which would prove nothing. So
  // app-c impersonates VLAN 100's subnet: only the wire (VLAN / segment) can keep it out.
  const probe = `${ipv4(a).split('.').slice(0, 3).join('.')}.250/24`;
  await p.ip('-n', c.netns, 'addr', 'add', probe, 'dev', 'net1');
  for (const to of [a, b]) {
    const ok = await p.ping(c.netns, ipv4(to));
    out(`  ${ok ? 'FAIL' : 'PASS'} ${c.name} (VLAN ${c.registered.vlan}, given a probe address ${probe} in VLAN ${to.registered.vlan}'s subnet) → ${to.name} ${ipv4(to)}: ${ok ? 'REACHABLE (isolation broken)' : 'isolated, no reply'}`);
    if (ok) throw new Error(`${c.name} reached ${to.name} across VLANs`);
    summary.isolated++;
  }
  await p.ip('-n', c.netns, 'addr', 'del', probe, 'dev', 'net1');

  teardown.check();
  out('\n[6/6] teardown: CNI DEL for each pod, then the VFs compared with before');
  for (const pod of [...pods].reverse()) {
    const del = await execCni(cniBin, 'DEL', pod.env, pod.netconf);
    if (del.code !== 0) throw new Error(`CNI DEL for ${pod.name} failed: ${cniErr(del)}`);
    pod.added = false;
    kubelet.release(pod.podUidAtKubelet);
    await core.deleteNamespacedPod({ namespace: POD_NAMESPACE, name: pod.name, gracePeriodSeconds: 0 });
    out(`  ✓ DEL ${pod.name}: VF ${pod.deviceID} released (${servedBy(cniLog, pod.containerId, 'DEL', summaryServed)})`);
  }
  // The agent releases the claims from the CNI's DEL queue, asynchronously.
  const claimsLeft = async () => (await listClaims(custom)).filter(ofDemoPod).length;
  await waitFor('the IP claims released', async () => (await claimsLeft()) === 0, 20_000).catch(() => undefined);
  const left = await claimsLeft();
  out(left === 0 ? '  ✓ the pods\' IPClaims released by the node agent (from the CNI\'s DEL queue)' : `  ! ${left} IPClaim(s) of the pods not released yet`);
  const after = await vfStates(p, allVfs);
  let broken = 0;
  const fmt = (st: VfState) => `${st.name} ${st.mac} mtu ${st.mtu}${st.line ? ` [${st.line}]` : ''}`;
  for (const was of before) {
    const now = after.find((st) => st.pci === was.pci)!;
    const same = fmt(was) === fmt(now);
    if (!same) broken++;
    else summary.restored++;
    const used = pods.find((q) => q.deviceID === was.pci);
    if (!used && same) continue;
    out(`  ${same ? 'restored' : 'NOT RESTORED'} ${was.pci} (${was.pf} vf ${was.vfIndex}${used ? `, ${used.name}'s` : ''})`);
    out(`      before: ${fmt(was)}`);
    if (used?.inPod) out(`      in pod: ${used.inPod.name} ${used.inPod.mac} mtu ${used.inPod.mtu} (netns ${used.netns})`);
    out(`      after:  ${fmt(now)}`);
  }
  const untouched = before.filter((b) => !pods.some((q) => q.deviceID === b.pci)).length;
  out(`  the ${untouched} VFs no pod got: unchanged`);
  if (broken > 0) throw new Error(`${broken} VF(s) not restored`);
  out(`all ${before.length} VFs restored exactly (name, MAC, MTU${p.vfLines ? ', VF line' : ''})`);
  summary.vfs = before.length;
  return summary;
}
