// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
// vm-modules: overlay veth
// vm-cni-modes: fallback
// vm-apt: containerd runc
// vm-mountpoints: /etc/cni/net.d /opt/cni/bin
// vm-extra-seconds: 1500
/**
 * The runtime tier: Debian's containerd (its CRI plugin) and runc run pods on the real igbvf VFs,
 * with our CNI installed in /opt/cni/bin and the shipped primary conflist (deploy/60-primary.conflist)
 * in /etc/cni/net.d. test/cri/client.ts does what kubelet does (RunPodSandbox with the pod's name,
 * namespace and UID; PodSandboxStatus; StopPodSandbox; RemovePodSandbox), and the node daemon
 * (device plugin + agent, fake kubelet and API server) serves each pod's registration: the VF lands
 * in the sandbox's netns with the registered IP, VLAN and rate, and comes home exactly as it was.
 * Then containerd restarts under running pods, a sandbox's netns is unmounted behind containerd's
 * back, and the conflist is delegated to as Multus does it: a cluster network first (ptp), ours second.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { IPCLAIMS, loadKubeConfig, makeKubeClients } from '../../../src/kube/client';
import { sandboxNetnsPath, type CriClient } from '../../cri/client';
import { ociArchive } from '../../cri/oci-archive';
import { assertRestored, snapshot, type VfBed, type VfSnapshot } from '../lib/cni-scenario';
import { CNI_BIN_DIR, CNI_CONF_DIR, Containerd, SANDBOX_IMAGE, mountRuntimeDirs } from '../lib/containerd';
import { addrsIn } from '../lib/netns';
import { AGENT_SOCKET, startRuntimeNode, type RuntimeNode } from '../lib/runtime-node';
import type { Scenario } from '../lib/scenario';
import { IP, ip, must, run, sleep } from '../lib/sh';
import { findPf, pfUp, setNumVfs, vfView } from '../lib/sriov';

const NS = 'crit';
const DIR = '/run/vmtest/cri';
const CNI_LOG_DIR = '/var/log/sriov-underlay';

interface Pod { name: string; vf: number; ip: string; rate: number }
const PODS: Pod[] = [
  { name: 'pod-a', vf: 0, ip: '10.100.0.11', rate: 200 },
  { name: 'pod-b', vf: 1, ip: '10.100.0.12', rate: 300 },
  { name: 'pod-c', vf: 2, ip: '10.100.0.13', rate: 400 },
];

/** The PCI device behind `dev` in a netns, read from the netns's own sysfs (ip netns exec remounts it). */
async function pciIn(nsName: string, dev: string): Promise<string | null> {
  const r = await run(IP, ['netns', 'exec', nsName, 'readlink', `/sys/class/net/${dev}/device`]);
  return r.code === 0 ? basename(r.stdout.trim()) : null;
}

interface Running { pod: Pod; id: string; uid: string; netns: string; before: VfSnapshot; release(): Promise<void> }

export const scenario: Scenario = {
  timeoutSec: 1500,
  async run({ t, project, outDir, defer }) {
    const pf = await t.step('an igb PF netdev exists', () => findPf());
    await t.step('PF up with carrier (max_tx_rate needs the link)', () => pfUp(pf));
    const vfs = await t.step('3 VFs', () => setNumVfs(pf, 3));
    const bed: VfBed = { pf, vfs };
    await ip('link', 'set', 'lo', 'up');
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });

    // ---- the node: runtime dirs, the CNI installed as the DaemonSet's init container does it
    const unmount = await t.step('cgroup2 and tmpfs /etc/cni/net.d, /opt/cni/bin', () => mountRuntimeDirs());
    defer(unmount);
    // The CNI logs to its default file; that dir is the results share, so the log survives a timeout.
    await t.step('/var/log/sriov-underlay bound to the results share', async () => {
      mkdirSync(join(outDir, 'cni-log'), { recursive: true });
      mkdirSync(CNI_LOG_DIR, { recursive: true });
      await must('/bin/mount', ['--bind', join(outDir, 'cni-log'), CNI_LOG_DIR]);
      defer(async () => void (await run('/bin/umount', ['-l', CNI_LOG_DIR])));
    });
    // The DaemonSet's init container script, as shipped: the one executable as sriov-underlay-cni,
    // then the shim (sriov-underlay). No CNI server runs here, so every call takes the shim's
    // fallback, as on a node whose daemon is down.
    await t.step('CNI installed by scripts/install-cni.sh, with Debian\'s loopback, tuning, ptp and host-local', async () => {
      await must('/bin/sh', [join(project, 'scripts/install-cni.sh')], {
        env: { PATH: process.env.PATH, SRIOV_UNDERLAY_SRC: join(project, 'dist'), CNI_BIN_DIR, CNI_CONF_DIR, INSTALL_CONFLIST: 'false' },
        timeoutMs: 300_000,
      });
      for (const p of ['loopback', 'tuning', 'ptp', 'host-local']) symlinkSync(`/usr/lib/cni/${p}`, join(CNI_BIN_DIR, p));
    });
    const primary = readFileSync(join(project, 'deploy/60-primary.conflist'), 'utf8');
    const netName = (JSON.parse(primary) as { name: string }).name;
    writeFileSync(join(CNI_CONF_DIR, '10-sriov-underlay.conflist'), primary);

    // ---- the control plane side and the node daemon
    const node: RuntimeNode = await t.step('fake API server, fake kubelet (+ PodResources) and the node daemon (device plugin + agent)', () =>
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

    // ---- containerd
    const containerd = new Containerd(join(DIR, 'containerd'), outDir);
    const cri: CriClient = containerd.cri;
    defer(() => containerd.stop());
    containerd.configure({ maxConfNum: 2 });
    const started = await t.step('containerd (CRI plugin) answers Version', () => containerd.start());
    t.comment(`${started.version}, CRI up ${(started.ms / 1000).toFixed(1)} s after exec`);
    await t.step('ctr -n k8s.io images import of the pause archive', () => containerd.importImage(archive));
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

    // ---- 1. the primary network: two pods run, the runtime reports what the CNI returned
    const a = await t.step('pod-a: RunPodSandbox (our conflist is the primary network)', () => runPod(PODS[0]!));
    await checkAttached(a, 'eth0', 'pod-a');
    const sa = (await cri.podSandboxStatus(a.id)).status;
    t.equal(sa?.network?.ip, a.pod.ip, 'pod-a: PodSandboxStatus reports the IP our CNI returned');
    t.equal(sa?.state, 'SANDBOX_READY', 'pod-a: sandbox READY');
    t.equal(sa?.metadata, { name: 'pod-a', namespace: NS, uid: a.uid, attempt: 0 }, 'pod-a: status metadata is what kubelet sent');
    const { custom } = makeKubeClients(loadKubeConfig({ kubeconfig: join(DIR, 'node', 'kubeconfig') }));
    const claims = (await custom.listClusterCustomObject({ group: IPCLAIMS.group, version: IPCLAIMS.version, plural: IPCLAIMS.plural })) as { items: { spec: { ip: string; pod?: { namespace?: string; name?: string; uid?: string } } }[] };
    t.equal(claims.items.find((c) => c.spec.ip === a.pod.ip)?.spec.pod, { namespace: NS, name: 'pod-a', uid: a.uid },
      'pod-a: the IP claim holds the pod name, namespace and UID containerd passed in CNI_ARGS');
    const b = await t.step('pod-b: RunPodSandbox', () => runPod(PODS[1]!));
    await checkAttached(b, 'eth0', 'pod-b');
    t.equal((await cri.podSandboxStatus(b.id)).status?.network?.ip, b.pod.ip, 'pod-b: PodSandboxStatus reports the IP our CNI returned');

    // ---- 2. containerd restarted with both sandboxes running
    await containerd.stop('SIGTERM');
    await sleep(1_000);
    await checkAttached(a, 'eth0', 'containerd stopped: pod-a still');
    const restarted = await t.step('containerd restarted', () => containerd.start());
    t.comment(`containerd restart: CRI up in ${(restarted.ms / 1000).toFixed(1)} s`);
    const listed = await cri.listPodSandbox();
    t.equal([a, b].map((r) => listed.find((s) => s.id === r.id)?.state), ['SANDBOX_READY', 'SANDBOX_READY'], 'after the restart both sandboxes are listed READY');
    t.equal((await cri.podSandboxStatus(a.id)).status?.network?.ip, a.pod.ip, 'after the restart PodSandboxStatus still reports pod-a\'s IP');
    await checkAttached(b, 'eth0', 'after the restart pod-b');
    await stopRemove(a, 'pod-a after the containerd restart');

    // ---- 3. a sandbox whose netns vanished behind containerd's back
    await t.step(`pod-b: its netns ${b.netns} unmounted and deleted`, async () => {
      await must('/bin/umount', [b.netns]);
      rmSync(b.netns);
    });
    await stopRemove(b, 'pod-b with its netns gone');

    // ---- 4. delegated to as Multus does: a cluster network first (eth0), ours second (eth1).
    // containerd reloads /etc/cni/net.d on change; max_conf_num 2 takes both conflists in name order.
    writeFileSync(join(CNI_CONF_DIR, '.05-cluster.tmp'), JSON.stringify({
      cniVersion: '1.0.0', name: 'cluster',
      plugins: [{ type: 'ptp', ipam: { type: 'host-local', ranges: [[{ subnet: '10.99.0.0/24' }]] } }],
    }));
    renameSync(join(CNI_CONF_DIR, '.05-cluster.tmp'), join(CNI_CONF_DIR, '05-cluster.conflist'));
    await sleep(2_000);
    const c = await t.step('pod-c: RunPodSandbox (cluster network + ours)', () => runPod(PODS[2]!));
    await checkAttached(c, 'eth1', 'pod-c (second network)');
    const sc = (await cri.podSandboxStatus(c.id)).status;
    t.match(sc?.network?.ip ?? '', /^10\.99\.0\.\d+$/, 'pod-c: PodSandboxStatus reports the cluster network\'s IP (eth0), as with Multus');
    await stopRemove(c, 'pod-c');
    t.ok(existsSync(AGENT_SOCKET), 'the agent still serves after every pod came and went');
  },
};

