// vm-requires: dist/bin/sriov-underlay-node
// vm-requires: dist/image/oci/index.json
// vm-modules: overlay veth
// vm-apt: containerd runc
// vm-mountpoints: /etc/cni/net.d /opt/cni/bin
// vm-extra-seconds: 1800
/**
 * The runtime tier: Debian's containerd (its CRI plugin) and runc run pods on the real igbvf VFs,
 * and the node side runs as the DaemonSet runs it, from the image `npm run image` built
 * (dist/image/, imported with `ctr -n k8s.io images import`): the install-cni init container puts
 * the CNI into /opt/cni/bin, then the `node` container (device plugin + agent + node policy) and the
 * `cni-server` container run under containerd with `ctr run`, with the capabilities, mounts, host
 * network and host PID that test/cri/daemonset-ctr.ts reads from deploy/40-daemonset.yaml itself
 * (and each running process is checked against the manifest: /proc/<pid>/status CapEff, mountinfo).
 * The fake kubelet and the fake API server (TLS, a node-bound service-account token mounted where
 * kubelet projects it) stay outside. The shipped primary conflist (deploy/60-primary.conflist) is in
 * /etc/cni/net.d, and test/cri/client.ts does what kubelet does (RunPodSandbox with the pod's name,
 * namespace and UID; PodSandboxStatus; StopPodSandbox; RemovePodSandbox).
 * First with the cni-server container up: every call of pod-a and pod-b is served by the warm server
 * in the container (the CNI log's servedBy, and the server's own metrics): the VF lands in the
 * sandbox's netns with the registered IP, VLAN and rate and comes home exactly as it was;
 * containerd restarts under the running pods (and under the DaemonSet's containers). Then the
 * cni-server container is stopped, and the same flow goes through the shim's fallback: pod-b
 * (attached by the server) is deleted with its netns unmounted behind containerd's back, pod-d
 * runs on the primary network, and pod-c is delegated to as Multus does it (a cluster network
 * first, ptp; ours second). It takes no CNI mode from the matrix (it does not require the shim from dist/bin): it runs both paths itself.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { IPCLAIMS, loadKubeConfig, makeKubeClients } from '../../../src/kube/client';
import { sandboxNetnsPath, type CriClient } from '../../cri/client';
import { ociArchive } from '../../cri/oci-archive';
import { GREETING, readGreeting, servedByInLog } from '../../fixtures/cni-server-process';
import { assertRestored, snapshot, type VfBed, type VfSnapshot } from '../lib/cni-scenario';
import { CNI_BIN_DIR, CNI_CONF_DIR, Containerd, SANDBOX_IMAGE, mountRuntimeDirs } from '../lib/containerd';
import { addrsIn } from '../lib/netns';
import { IMAGE_NS, NodePod, builtImage, differencesFromManifest, type PodContainer } from '../lib/node-image';
import { AGENT_SOCKET, NODE, startRuntimeNode, type RuntimeNode } from '../lib/runtime-node';
import type { Scenario } from '../lib/scenario';
import { IP, ip, must, run, sleep, waitFor } from '../lib/sh';
import { findPf, pfUp, setNumVfs, vfView } from '../lib/sriov';

const NS = 'crit';
const DIR = '/run/vmtest/cri';
const CNI_LOG_DIR = '/var/log/sriov-underlay';
/** The DaemonSet's cni-server socket (its --cni-socket), where the shim looks by default. */
const CNI_SOCKET = '/run/sriov-underlay-cni/cni.sock';
const NETNS_DIR = '/run/netns';

interface Pod { name: string; vf: number; ip: string; rate: number }
const PODS: Pod[] = [
  { name: 'pod-a', vf: 0, ip: '10.100.0.11', rate: 200 },
  { name: 'pod-b', vf: 1, ip: '10.100.0.12', rate: 300 },
  { name: 'pod-c', vf: 2, ip: '10.100.0.13', rate: 400 },
  { name: 'pod-d', vf: 0, ip: '10.100.0.14', rate: 250 },
];

/** The PCI device behind `dev` in a netns, read from the netns's own sysfs (ip netns exec remounts it). */
async function pciIn(nsName: string, dev: string): Promise<string | null> {
  const r = await run(IP, ['netns', 'exec', nsName, 'readlink', `/sys/class/net/${dev}/device`]);
  return r.code === 0 ? basename(r.stdout.trim()) : null;
}

/** `count` of the cni-server's command histogram for one command and result, from its /metrics (host network). */
async function serverCount(port: number, command: string, result: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^sriov_underlay_cni_server_command_seconds_count\\{command="${command}",result="${result}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

interface Running { pod: Pod; id: string; uid: string; netns: string; before: VfSnapshot; release(): Promise<void> }

export const scenario: Scenario = {
  timeoutSec: 1800,
  async run({ t, project, outDir, defer }) {
    const pf = await t.step('an igb PF netdev exists', () => findPf());
    await t.step('PF up with carrier (max_tx_rate needs the link)', () => pfUp(pf));
    const vfs = await t.step('3 VFs', () => setNumVfs(pf, 3));
    const bed: VfBed = { pf, vfs };
    await ip('link', 'set', 'lo', 'up');
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    const image = builtImage(project);
    t.comment(`image ${image.ref} ${image.digest} (revision ${image.revision}), entrypoint ${JSON.stringify(image.entrypoint)}`);

    // ---- the node: runtime dirs as a systemd node has them
    const unmount = await t.step('cgroup2 and tmpfs /etc/cni/net.d, /opt/cni/bin', () => mountRuntimeDirs());
    defer(unmount);
    // The CNI logs to its default file, from the host (the shim's fallback) and from the cni-server
    // container (its cni-log volume): that dir is the results share, so the log survives a timeout.
    const cniLog = join(outDir, 'cni-log', 'cni.log');
    await t.step('/var/log/sriov-underlay bound to the results share', async () => {
      mkdirSync(join(outDir, 'cni-log'), { recursive: true });
      mkdirSync(CNI_LOG_DIR, { recursive: true });
      await must('/bin/mount', ['--bind', join(outDir, 'cni-log'), CNI_LOG_DIR]);
      defer(async () => void (await run('/bin/umount', ['-l', CNI_LOG_DIR])));
    });
    // The runtime pins each sandbox's netns under /run/netns after cni-server started: the mount
    // reaches the container (HostToContainer = rslave) only if the host's side is a shared mount,
    // as everything is under systemd. The guest's init shares nothing, so do what ip-netns(8) does.
    await t.step(`${NETNS_DIR} a shared mount (as on a systemd node)`, async () => {
      mkdirSync(NETNS_DIR, { recursive: true });
      if (!readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === NETNS_DIR)) {
        await must('/bin/mount', ['--bind', NETNS_DIR, NETNS_DIR]);
      }
      await must('/bin/mount', ['--make-shared', NETNS_DIR]);
    });

    // ---- the control plane side: fake API server (TLS + token), fake kubelet + PodResources
    const primary = readFileSync(join(project, 'deploy/60-primary.conflist'), 'utf8');
    const netName = (JSON.parse(primary) as { name: string }).name;
    const node: RuntimeNode = await t.step('fake API server (TLS, a node-bound token), fake kubelet (plugin watcher) and PodResources', () =>
      startRuntimeNode({
        project, dir: join(DIR, 'node'), logDir: outDir, pf, namespace: NS, defer,
        network: { name: netName, vlan: 100, subnet: '10.100.0.0/24', mtu: 1400, maxTxRateMbps: 900 },
        registrations: PODS.map((p) => ({ pod: p.name, ip: p.ip, maxTxRateMbps: p.rate })),
      }),
    );

    // ---- the sandbox image, built here: a static pause in a deterministic OCI archive
    const archive = join(DIR, 'pause.oci.tar');
    await t.step('pause built (static C) and packed as an OCI archive', async () => {
      await must('cc', ['-static', '-Os', '-s', '-o', join(DIR, 'pause'), join(project, 'test/cri/pause.c')], { timeoutMs: 300_000 });
      const img = ociArchive({ ref: SANDBOX_IMAGE, entrypoint: ['/pause'], files: [{ path: 'pause', type: 'file', data: readFileSync(join(DIR, 'pause')), mode: 0o755 }] });
      writeFileSync(archive, img.archive);
      t.comment(`pause image ${img.manifestDigest}, ${img.archive.length} bytes`);
    });

    // ---- containerd, both images
    const containerd = new Containerd(join(DIR, 'containerd'), outDir);
    const cri: CriClient = containerd.cri;
    defer(() => containerd.stop());
    containerd.configure({ maxConfNum: 2 });
    const started = await t.step('containerd (CRI plugin) answers Version', () => containerd.start());
    t.comment(`${started.version}, CRI up ${(started.ms / 1000).toFixed(1)} s after exec`);
    await t.step('ctr -n k8s.io images import of the pause archive', () => containerd.importImage(archive));
    const t0Import = Date.now();
    await t.step(`ctr -n k8s.io images import of ${basename(image.archive)} (npm run image)`, () => containerd.importImage(image.archive));
    t.comment(`image import ${((Date.now() - t0Import) / 1000).toFixed(1)} s`);
    const listed0 = await containerd.ctr('-n', IMAGE_NS, 'images', 'ls');
    t.ok(listed0.split('\n').some((l) => l.startsWith(`${image.ref} `) && l.includes(image.digest)), `containerd lists ${image.ref} at ${image.digest}`, listed0);

    // ---- the DaemonSet's pod, container by container, as deploy/40-daemonset.yaml says
    const pod = new NodePod({ containerd, project, image, nodeName: NODE, volumeDirs: node.volumeDirs, serviceEnv: node.serviceEnv, logDir: outDir });
    const containers: PodContainer[] = [];
    defer(async () => {
      for (const c of containers.reverse()) await c.stop().catch((e: Error) => t.comment(`teardown ${c.id}: ${e.message}`));
    });
    await t.step('init container install-cni (ctr run --rm): the CNI into /opt/cni/bin from the image', () => pod.runToCompletion('install-cni'));
    t.ok(existsSync(join(CNI_BIN_DIR, 'sriov-underlay')) && existsSync(join(CNI_BIN_DIR, 'sriov-underlay-cni')), 'the shim and the standalone CNI are in /opt/cni/bin, from the image');
    for (const p of ['loopback', 'tuning', 'ptp', 'host-local']) await must('/bin/ln', ['-s', `/usr/lib/cni/${p}`, join(CNI_BIN_DIR, p)]);
    writeFileSync(join(CNI_CONF_DIR, '10-sriov-underlay.conflist'), primary);

    const startChecked = async (name: string, n: number, ready: (c: PodContainer) => Promise<void>): Promise<PodContainer> => {
      const c = await t.step(`container ${name} (ctr run -d, from the manifest: ${pod.spec(name).caps.join('+') || 'no capabilities'})`, () => pod.start(name, n));
      containers.push(c);
      await t.step(`${name} ready`, () => ready(c));
      const pid = await c.pid();
      t.ok(pid !== null, `${name} is RUNNING`);
      if (pid !== null) {
        const diff = differencesFromManifest(pid, c.spec);
        t.equal(diff, [], `${name}: the running process has the manifest's capabilities, mounts (ro/rw) and read-only root`);
      }
      return c;
    };
    const nodeC = await startChecked('node', 1, (c) => node.waitForDaemon(async () => (await c.pid()) !== null).catch((e: Error) => {
      throw new Error(`${e.message}; its log:\n${readFileSync(c.logFile, 'utf8').split('\n').slice(-15).join('\n')}`);
    }));
    const serverReady = (c: PodContainer) => waitFor(`${CNI_SOCKET} greeting`, async () => {
      if ((await c.pid()) === null) throw new Error(`the cni-server container is not running; its log:\n${existsSync(c.logFile) ? readFileSync(c.logFile, 'utf8').split('\n').slice(-15).join('\n') : '(none)'}`);
      return (await readGreeting(CNI_SOCKET, 1_000)) === GREETING || null;
    }, 120_000, 500).then(() => undefined);
    const serverC = await startChecked('cni-server', 1, serverReady);
    const metricsPort = Number(/--cni-metrics-address=:(\d+)/.exec(serverC.spec.process.join(' '))?.[1] ?? 0);

    const running = new Map<string, Running>();
    // Whatever a failed step left: stop and remove every sandbox (as kubelet would), before containerd goes.
    defer(async () => {
      for (const s of await cri.listPodSandbox().catch(() => [])) {
        await cri.stopPodSandbox(s.id).catch((e: Error) => t.comment(`teardown stop ${s.id}: ${e.message}`));
        await cri.removePodSandbox(s.id).catch((e: Error) => t.comment(`teardown remove ${s.id}: ${e.message}`));
      }
      for (const r of running.values()) await r.release().catch(() => undefined);
    });

    const runPod = async (pod: Pod): Promise<Running> => {
      const before = await snapshot(bed, pod.vf);
      const admitted = await node.admit(NS, pod.name, vfs[pod.vf]!);
      // kubelet retries a failed RunPodSandbox at its next pod sync (the CNI's code 11 means exactly
      // that); so do we, at most 3 times, and every failure is printed.
      let id = '';
      for (let attempt = 1; !id; attempt++) {
        const t0 = Date.now();
        try {
          id = await cri.runPodSandbox({ metadata: { name: pod.name, namespace: NS, uid: admitted.uid, attempt: 0 } });
          t.comment(`${pod.name}: RunPodSandbox ${((Date.now() - t0) / 1000).toFixed(1)} s (try ${attempt})`);
        } catch (e) {
          t.comment(`${pod.name}: RunPodSandbox try ${attempt} failed after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${(e as Error).message}`);
          if (attempt === 3) throw e;
          await sleep(2_000);
        }
      }
      const st = await cri.podSandboxStatus(id, true);
      const netns = sandboxNetnsPath(st);
      if (!netns) throw new Error(`PodSandboxStatus(verbose) of ${id} names no network namespace`);
      const r: Running = { pod, id, uid: admitted.uid, netns, before, release: admitted.release };
      running.set(pod.name, r);
      return r;
    };

    /** Everything the pod should have: the VF in its netns with the registered IP, VLAN and rate. */
    const checkAttached = async (r: Running, ifname: string, what: string) => {
      const nsName = basename(r.netns);
      t.equal(await pciIn(nsName, ifname), vfs[r.pod.vf], `${what}: ${ifname} in the sandbox's netns is VF ${r.pod.vf} (${vfs[r.pod.vf]})`);
      t.equal(await addrsIn(nsName, ifname).catch((e: Error) => [e.message]), [`${r.pod.ip}/24`], `${what}: ${ifname} has the registered address ${r.pod.ip}/24`);
      const v = await vfView(pf, r.pod.vf);
      t.equal({ vlan: v.vlan, maxTxRate: v.maxTxRate }, { vlan: 100, maxTxRate: r.pod.rate }, `${what}: the PF's VF ${r.pod.vf} line has VLAN 100 and the registered max_tx_rate ${r.pod.rate}`);
    };
    /** Which path served each of a sandbox's calls of `cmd`, from the CNI log (the shim's fallback marks its calls). */
    const servedBy = (r: Running, cmd: string) => [...new Set(servedByInLog(cniLog, { container: r.id, cmd }))];
    const stopRemove = async (r: Running, what: string) => {
      const t0 = Date.now();
      await t.step(`${what}: StopPodSandbox`, () => cri.stopPodSandbox(r.id));
      t.comment(`${r.pod.name}: StopPodSandbox ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await assertRestored(t, bed, r.pod.vf, r.before, `${what}: after StopPodSandbox`);
      await t.step(`${what}: RemovePodSandbox`, () => cri.removePodSandbox(r.id));
      t.ok(!(await cri.listPodSandbox()).some((s) => s.id === r.id), `${what}: the sandbox is gone from ListPodSandbox`);
      await r.release();
      running.delete(r.pod.name);
    };

    // ---- 1. the cni-server container serves: two pods on the primary network
    const a = await t.step('pod-a: RunPodSandbox (our conflist is the primary network)', () => runPod(PODS[0]!));
    await checkAttached(a, 'eth0', 'pod-a');
    t.equal(servedBy(a, 'ADD'), ['server'], 'pod-a: ADD served by the warm server in the cni-server container (CNI log)');
    const sa = (await cri.podSandboxStatus(a.id)).status;
    t.equal(sa?.network?.ip, a.pod.ip, 'pod-a: PodSandboxStatus reports the IP our CNI returned');
    t.equal(sa?.state, 'SANDBOX_READY', 'pod-a: sandbox READY');
    t.equal(sa?.metadata, { name: 'pod-a', namespace: NS, uid: a.uid, attempt: 0 }, 'pod-a: status metadata is what kubelet sent');
    const { custom } = makeKubeClients(loadKubeConfig({ kubeconfig: join(DIR, 'node', 'kubeconfig') }));
    const claims = (await custom.listClusterCustomObject({ group: IPCLAIMS.group, version: IPCLAIMS.version, plural: IPCLAIMS.plural })) as { items: { spec: { ip: string; pod?: { namespace?: string; name?: string; uid?: string } } }[] };
    t.equal(claims.items.find((c) => c.spec.ip === a.pod.ip)?.spec.pod, { namespace: NS, name: 'pod-a', uid: a.uid },
      'pod-a: the IP claim (made by the node container with its service-account token) holds the pod name, namespace and UID containerd passed in CNI_ARGS');
    const b = await t.step('pod-b: RunPodSandbox', () => runPod(PODS[1]!));
    await checkAttached(b, 'eth0', 'pod-b');
    t.equal((await cri.podSandboxStatus(b.id)).status?.network?.ip, b.pod.ip, 'pod-b: PodSandboxStatus reports the IP our CNI returned');
    t.equal(servedBy(b, 'ADD'), ['server'], 'pod-b: ADD served by the server (CNI log)');
    t.equal(await serverCount(metricsPort, 'ADD', 'ok'), 2, `the server's own metrics (:${metricsPort}) count the 2 ADDs, ok`);

    // ---- 2. containerd restarted with both sandboxes and the DaemonSet's containers running
    const pidsBefore = [await nodeC.pid(), await serverC.pid()];
    await containerd.stop('SIGTERM');
    await sleep(1_000);
    await checkAttached(a, 'eth0', 'containerd stopped: pod-a still');
    const restarted = await t.step('containerd restarted', () => containerd.start());
    t.comment(`containerd restart: CRI up in ${(restarted.ms / 1000).toFixed(1)} s`);
    t.equal([await nodeC.pid(), await serverC.pid()], pidsBefore, 'the node and cni-server containers ran on through the containerd restart (same pids)');
    const listed = await cri.listPodSandbox();
    t.equal([a, b].map((r) => listed.find((s) => s.id === r.id)?.state), ['SANDBOX_READY', 'SANDBOX_READY'], 'after the restart both sandboxes are listed READY');
    t.equal((await cri.podSandboxStatus(a.id)).status?.network?.ip, a.pod.ip, 'after the restart PodSandboxStatus still reports pod-a\'s IP');
    await checkAttached(b, 'eth0', 'after the restart pod-b');
    await stopRemove(a, 'pod-a after the containerd restart');
    t.equal(servedBy(a, 'DEL'), ['server'], 'pod-a: DEL served by the server (CNI log)');

    // ---- 3. the cni-server container stopped: from here on the shim's fallback serves
    await t.step('cni-server container stopped (SIGTERM, as kubelet stops it)', () => serverC.stop());
    containers.splice(containers.indexOf(serverC), 1);
    t.ok((await readGreeting(CNI_SOCKET, 1_000)) !== GREETING, 'nothing greets on the server socket any more');

    // ---- 4. a sandbox attached by the server, its netns vanished, deleted by the fallback
    await t.step(`pod-b: its netns ${b.netns} unmounted and deleted`, async () => {
      await must('/bin/umount', [b.netns]);
      rmSync(b.netns);
    });
    await stopRemove(b, 'pod-b (attached by the server) with its netns gone, server down');
    const bDel = servedBy(b, 'DEL');
    t.ok(bDel.length > 0 && bDel.every((m) => m.startsWith('fallback:')), 'pod-b: DEL served by the shim\'s fallback (CNI log)', bDel.join(', '));

    // ---- 5. the primary network through the fallback
    const d = await t.step('pod-d: RunPodSandbox with the server down', () => runPod(PODS[3]!));
    await checkAttached(d, 'eth0', 'pod-d (fallback)');
    t.equal((await cri.podSandboxStatus(d.id)).status?.network?.ip, d.pod.ip, 'pod-d: PodSandboxStatus reports the IP our CNI returned');
    const dAdd = servedBy(d, 'ADD');
    t.ok(dAdd.length > 0 && dAdd.every((m) => m.startsWith('fallback:')), 'pod-d: ADD served by the shim\'s fallback (CNI log)', dAdd.join(', '));
    await stopRemove(d, 'pod-d');

    // ---- 6. delegated to as Multus does: a cluster network first (eth0), ours second (eth1).
    // containerd reloads /etc/cni/net.d on change; max_conf_num 2 takes both conflists in name order.
    writeFileSync(join(CNI_CONF_DIR, '.05-cluster.tmp'), JSON.stringify({
      cniVersion: '1.0.0', name: 'cluster',
      plugins: [{ type: 'ptp', ipam: { type: 'host-local', ranges: [[{ subnet: '10.99.0.0/24' }]] } }],
    }));
    renameSync(join(CNI_CONF_DIR, '.05-cluster.tmp'), join(CNI_CONF_DIR, '05-cluster.conflist'));
    await sleep(2_000);
    const c = await t.step('pod-c: RunPodSandbox (cluster network + ours, fallback)', () => runPod(PODS[2]!));
    await checkAttached(c, 'eth1', 'pod-c (second network)');
    const sc = (await cri.podSandboxStatus(c.id)).status;
    t.match(sc?.network?.ip ?? '', /^10\.99\.0\.\d+$/, 'pod-c: PodSandboxStatus reports the cluster network\'s IP (eth0), as with Multus');
    await stopRemove(c, 'pod-c');
    const cMarks = [...servedBy(c, 'ADD'), ...servedBy(c, 'DEL')];
    t.ok(cMarks.length > 0 && cMarks.every((m) => m.startsWith('fallback:')), 'pod-c: ADD and DEL served by the fallback (CNI log)', cMarks.join(', '));
    t.ok(existsSync(AGENT_SOCKET) && (await nodeC.pid()) !== null, 'the node container still runs and its agent serves after every pod came and went');
  },
};
