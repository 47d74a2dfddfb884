/**
 * The node agent: registration index (list+watch), CNI socket, IP claims, queued releases,
 * reservations, drift reports and Events. It runs inside the `sriov-underlay-node` daemon;
 * `startAgent` is the one entry point the daemon calls.
 */
import * as path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { CniCode, UnderlayError } from '../errors';
import { CLAIM_LABELS, releaseAttachment, type ClaimDeps, type IPClaim } from '../ipam/claims';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../kube/client';
import { configMapInformer } from '../kube/informer';
import type { Logger } from '../log';
import { detectDrift } from '../registrations/drift';
import { RegistrationIndex } from '../registrations/index';
import { formatSource, type Rejection, type ResolvedSettings } from '../registrations/types';
import { DEFAULT_AGENT_SOCKET, type LookupRequest, type ReportRequest } from '../schemas/agent-protocol';
import { CLAIM_RELEASE_DIR, type ClaimRelease } from '../schemas/claim-release';
import { readVf } from '../sysfs/pci';
import { IpamService } from '../ipam/pool-service';
import { claimFixed, settingsRecord, withClaimedIps, type Attachment } from './assign';
import { startCniSocket, type CniSocketServer } from './cni-socket';
import { EVENT_REASONS, EventRecorder, rejectionSeries, type EventTarget } from './events';
import { lookupHandler } from './lookup';
import { PodResourcesClient } from './pod-resources';
import { podUidGetter } from './pods';
import { ReleaseQueue } from './release-queue';

export const DEFAULT_STATE_DIR = '/var/lib/cni/sriov-underlay';
/** Networks and registrations, in every namespace (networks only count in the system namespace). */
export const CONFIGMAP_SELECTOR = 'sriov-underlay.io/kind in (network,registration)';

export interface AgentOptions {
  nodeName: string;
  log: Logger;
  /** A kubeconfig file; default: in-cluster service account, then $KUBECONFIG. */
  kubeconfig?: string;
  /** Default /run/sriov-underlay/agent.sock. */
  socketPath?: string;
  /** The CNI's stateDir (claim releases are queued under it). Default /var/lib/cni/sriov-underlay. */
  stateDir?: string;
  systemNamespace?: string;
  /** kubelet's PodResources socket; null to never ask (SR-IOV only as a secondary CNI). */
  podResourcesSocket?: string | null;
  /** For the PF name in Events. Default /sys. */
  sysfsRoot?: string;
  releaseRetryMs?: number;
  /** The reconcile loop's period (default 30 s; 0: only when called). */
  reconcileIntervalMs?: number;
  /** Reconcile lists what it would release and releases nothing. */
  reconcileReportOnly?: boolean;
  /** The device pool of a VF on this node (null: none), to refuse a VF of another pool than the network's. */
  poolOf?: (pciAddr: string) => string | null;
}

export interface Agent {
  index: RegistrationIndex;
  socketPath: string;
  clients: KubeClients;
  events: EventRecorder;
  /** Attachments on this node (pod + network) and the settings they got (for drift). */
  running: Map<string, ResolvedSettings>;
  /** Run the release queue now (tests; the CNI's DEL note also triggers it through a directory watch). */
  drainReleases(): Promise<void>;
  /** Make missing reservations and drop orphaned ones now (also runs after each index change). */
  syncReservations(): Promise<void>;
  /** Pools (allocation, queued per pool on this node) and the reconcile loop. */
  ipam: IpamService;
  stop(): Promise<void>;
}

const podKey = (ns: string, name: string) => `${ns}/${name}`;
/** One entry per attachment: a pod on two networks has two. */
const attachmentKey = (ns: string, name: string, network: string) => `${ns}/${name}/${network}`;

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const log = opts.log.child({ component: 'agent', node: opts.nodeName });
  const clients = makeKubeClients(loadKubeConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}));
  const index = new RegistrationIndex(opts.systemNamespace ? { systemNamespace: opts.systemNamespace } : {});
  const events = new EventRecorder(clients.core, opts.nodeName, log);
  const claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  const deps: ClaimDeps = { claims, podUid: podUidGetter(clients.core) };
  const running = new Map<string, ResolvedSettings>();
  const podResources = opts.podResourcesSocket === null ? null : new PodResourcesClient(log, opts.podResourcesSocket ?? undefined);
  const sysfsRoot = opts.sysfsRoot ?? '/sys';
  const ipam = new IpamService({
    clients, claims, claimDeps: deps, index, nodeName: opts.nodeName, log,
    ...(opts.reconcileIntervalMs !== undefined ? { reconcileIntervalMs: opts.reconcileIntervalMs } : {}),
    ...(opts.reconcileReportOnly !== undefined ? { reportOnly: opts.reconcileReportOnly } : {}),
    onReleased: (f) => {
      const msg = `reconcile released ${f.ip} on network ${f.network} of pod ${f.pod.namespace}/${f.pod.name} (uid ${f.pod.uid}): ${f.reason}`;
      events.emit({ kind: 'Pod', namespace: f.pod.namespace, name: f.pod.name }, 'Normal', EVENT_REASONS.released, msg);
    },
  });

  const cmTarget = (r: { namespace: string; configMap: string }): EventTarget => ({ kind: 'ConfigMap', namespace: r.namespace, name: r.configMap });
  const podTarget = (req: { namespace: string; name: string; uid?: string }): EventTarget => {
    const t: EventTarget = { kind: 'Pod', namespace: req.namespace, name: req.name };
    if (req.uid) t.uid = req.uid;
    return t;
  };

  const pfOf = (pci: string | undefined): string | undefined => {
    if (!pci) return undefined;
    try {
      return readVf(sysfsRoot, pci).pfNetdev ?? undefined;
    } catch {
      return undefined;
    }
  };

  // ---- ADD: claim, record, tell ------------------------------------------------------------------
  const assign = async (req: LookupRequest, s: ResolvedSettings): Promise<ResolvedSettings> => {
    const a: Attachment = { pod: { namespace: req.namespace, name: req.name, uid: req.uid }, node: opts.nodeName, containerID: req.containerId ?? '', interface: req.ifName ?? '' };
    if (req.deviceID) a.vf = req.deviceID;
    let out = s;
    try {
      if (s.pool) {
        const net = index.network(s.network)!;
        out = withClaimedIps(s, net, await ipam.allocate(net, { ...a, source: s.source, settings: settingsRecord(s), kind: 'pool' }));
      } else {
        await claimFixed(deps, s, a);
      }
    } catch (e) {
      if (e instanceof UnderlayError && e.code === CniCode.IpConflict) {
        log.warn({ namespace: req.namespace, pod: req.name, uid: req.uid, source: formatSource(s.source), err: e.message }, 'IP conflict');
        events.emit(podTarget(req), 'Warning', EVENT_REASONS.conflict, e.message);
        events.emit(cmTarget(s.source), 'Warning', EVENT_REASONS.conflict, e.message);
      }
      throw e;
    }
    running.set(attachmentKey(req.namespace, req.name, out.network), out);
    const vf = req.deviceID;
    const pf = pfOf(vf);
    const fields = {
      namespace: req.namespace,
      pod: req.name,
      uid: req.uid,
      ips: out.ips,
      network: out.network,
      vlan: out.vlan,
      maxTxRateMbps: out.maxTxRateMbps,
      minTxRateMbps: out.minTxRateMbps,
      vf,
      pf,
      source: formatSource(out.source),
    };
    log.info(fields, 'IP assigned');
    const qos = `max ${out.maxTxRateMbps ?? 'unlimited'} Mbps, min ${out.minTxRateMbps ?? 0} Mbps`;
    const msg =
      `assigned ${out.ips.join(', ')} on network ${out.network} (VLAN ${out.vlan ?? 'unmanaged'}, ${qos})` +
      `${vf ? ` on VF ${vf}${pf ? ` of PF ${pf}` : ''}` : ''} to pod ${req.namespace}/${req.name} on node ${opts.nodeName}, from ${formatSource(out.source)}`;
    events.emit(podTarget(req), 'Normal', EVENT_REASONS.assigned, msg);
    events.emit(cmTarget(out.source), 'Normal', EVENT_REASONS.assigned, msg);
    return out;
  };

  const onRejected = (req: LookupRequest, r: Rejection) => {
    events.emit(podTarget(req), 'Warning', r.reason === 'conflict' ? EVENT_REASONS.conflict : EVENT_REASONS.rejected, r.message, rejectionSeries(r));
  };

  const deviceFor = podResources
    ? async (req: LookupRequest, resourceName: string | undefined) => {
        if (req.deviceID) return undefined; // the netconf has it already
        try {
          return await podResources.deviceFor(req.namespace, req.name, resourceName);
        } catch (e) {
          throw new UnderlayError(
            CniCode.TryAgainLater,
            `pod ${req.namespace}/${req.name}: kubelet PodResources API did not answer (${(e as Error).message}); is ${opts.podResourcesSocket ?? '/var/lib/kubelet/pod-resources/kubelet.sock'} mounted into the agent?`,
          );
        }
      }
    : undefined;

  // ---- index changes: rejections, drift, reservations --------------------------------------------
  const report = (list: Rejection[]) => {
    for (const r of list) {
      log.warn({ configMap: `${r.namespace}/${r.configMap}`, key: r.key, field: r.field, reason: r.reason, resourceVersion: r.resourceVersion }, r.message);
      events.emit(cmTarget(r), 'Warning', r.reason === 'conflict' ? EVENT_REASONS.conflict : EVENT_REASONS.rejected, r.message, rejectionSeries(r));
    }
  };
  const reportDrift = () => {
    for (const [key, was] of running) {
      const [ns, name] = key.split('/') as [string, string];
      const d = detectDrift(podKey(ns, name), was, index.lookup(ns, name, was.network));
      if (!d) continue;
      log.warn({ namespace: ns, pod: name, drift: d.kind, source: formatSource(was.source) }, d.message);
      events.emit({ kind: 'Pod', namespace: ns, name }, 'Warning', EVENT_REASONS.drift, d.message);
      events.emit(cmTarget(was.source), 'Warning', EVENT_REASONS.drift, d.message);
    }
  };

  let reservationsRunning: Promise<void> | null = null;
  let reservationsAgain = false;
  const syncReservationsOnce = async () => {
    const all = (await claims.list()).items;
    const covered = new Set(all.filter((c) => !c.spec.releasedAt && c.spec.pod.name === c.spec.source.key).map((c) => `${c.spec.source.namespace}/${c.spec.source.key}/${c.spec.network}`));
    const wanted = new Set<string>();
    for (const r of index.registrations()) {
      if (!r.spec.pool || !r.spec.reserve || r.form !== 'pod') continue;
      const res = index.lookup(r.meta.namespace, r.key, r.network);
      if (res.kind !== 'resolved') continue;
      const key = `${r.meta.namespace}/${r.key}/${r.network}`;
      wanted.add(key);
      if (covered.has(key)) continue;
      const net = index.network(res.settings.network)!;
      try {
        await ipam.allocate(net, { pod: { namespace: r.meta.namespace, name: r.key, uid: '' }, node: '', containerID: '', interface: '', source: res.settings.source, settings: settingsRecord(res.settings), kind: 'reserved' });
      } catch (e) {
        log.warn({ namespace: r.meta.namespace, key: r.key, err: (e as Error).message }, 'reservation failed; will retry');
      }
    }
    // A reservation whose registration is gone, and that no pod holds, is released.
    for (const c of all) {
      if (c.spec.kind !== 'reserved' || c.spec.pod.uid || wanted.has(`${c.spec.source.namespace}/${c.spec.source.key}/${c.spec.network}`)) continue;
      await claims.delete(c.metadata!.name!, { uid: c.metadata?.uid, resourceVersion: c.metadata?.resourceVersion }).catch(() => undefined);
      log.info({ ip: c.spec.ip, network: c.spec.network, key: c.spec.source.key }, 'reservation released: its registration is gone');
    }
  };
  /** Runs after the index changed; never before the first full list (a partial index would look like deleted registrations). */
  const syncReservations = (): Promise<void> => {
    if (reservationsRunning) {
      reservationsAgain = true;
      return reservationsRunning;
    }
    reservationsRunning = (async () => {
      do {
        reservationsAgain = false;
        await syncReservationsOnce().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'reservation sync failed'));
      } while (reservationsAgain);
    })().finally(() => (reservationsRunning = null));
    return reservationsRunning;
  };

  // list+watch (relist on 410, backoff, paging: src/kube/informer). No periodic re-delivery: the
  // index only changes when a ConfigMap does.
  // The index parses each ConfigMap as it arrives; the informer's cache keeps only what telling
  // changes and deletions apart needs, not the raw data, managedFields and the rest.
  const retain = (cm: k8s.V1ConfigMap): k8s.V1ConfigMap => {
    const m = cm.metadata ?? {};
    return { metadata: { namespace: m.namespace, name: m.name, resourceVersion: m.resourceVersion, labels: m.labels } };
  };
  const informer = configMapInformer(clients, undefined, { name: 'registrations', labelSelector: CONFIGMAP_SELECTOR, resyncMs: 0, log, retain });
  const changed = async (cm: { metadata?: { namespace?: string; name?: string; labels?: Record<string, string> } }) => {
    // The first list arrives one ConfigMap at a time, registrations possibly before the networks
    // they name: reporting then would send a false rejection Event per key (10,000 concurrent
    // requests and ~400 MB at start for 10,000 registrations). Reported once after the list instead.
    if (!listed) return;
    const ref = { namespace: cm.metadata?.namespace ?? '', name: cm.metadata?.name ?? '' };
    // A network edit can make any registration valid or not: look at all of them.
    if (cm.metadata?.labels?.['sriov-underlay.io/kind'] === 'network') report(await index.rejectionsAsync());
    else report([...(await index.rejectionsAsync(ref.namespace, ref.name)), ...index.networkRejectionsOf(ref.namespace, ref.name)]);
    reportDrift();
    void syncReservations();
  };
  // ConfigMaps are taken in one after another, each parsed in slices (applyConfigMapAsync) so a
  // large one never stalls the socket, gRPC or /metrics; `listed` is set once the first list is in.
  let listed = false;
  let applying: Promise<void> = Promise.resolve();
  const inOrder = (step: () => Promise<void> | void) => {
    applying = applying.then(step).catch((e: unknown) => log.error({ err: (e as Error).message }, 'registration ConfigMap not applied'));
  };
  informer.on('add', (cm) => inOrder(async () => {
    await index.applyConfigMapAsync(cm);
    await changed(cm);
  }));
  informer.on('update', (cm) => inOrder(async () => {
    await index.applyConfigMapAsync(cm);
    await changed(cm);
  }));
  informer.on('delete', (cm) => inOrder(async () => {
    index.deleteConfigMap(cm.metadata?.namespace ?? '', cm.metadata?.name ?? '');
    await changed(cm);
  }));

  // ---- DEL: queued releases -------------------------------------------------------------------------
  const release = async (rec: ClaimRelease) => {
    const released = await releaseAttachment(deps, { containerID: rec.containerId, interface: rec.ifName, uid: rec.uid, node: opts.nodeName });
    if (rec.namespace && rec.name) {
      // The note names the interface, not the network: the attachment whose claims were released.
      const gone = [...running].filter(([k, s]) => k.startsWith(`${podKey(rec.namespace!, rec.name!)}/`) && released.some((c) => c.startsWith(`${s.network}.`)));
      const was = gone[0]?.[1];
      for (const [k] of gone) running.delete(k);
      if (released.length) {
        const msg = `released ${released.join(', ')} of pod ${rec.namespace}/${rec.name} (container ${rec.containerId}, ${rec.ifName}) on node ${opts.nodeName}`;
        log.info({ namespace: rec.namespace, pod: rec.name, uid: rec.uid, claims: released }, 'IP released');
        events.emit(podTarget({ namespace: rec.namespace, name: rec.name, uid: rec.uid }), 'Normal', EVENT_REASONS.released, msg);
        if (was) events.emit(cmTarget(was.source), 'Normal', EVENT_REASONS.released, msg);
      }
    }
  };
  const queue = new ReleaseQueue({ dir: path.join(opts.stateDir ?? DEFAULT_STATE_DIR, CLAIM_RELEASE_DIR), release, log, intervalMs: opts.releaseRetryMs });

  // ---- start ------------------------------------------------------------------------------------------
  await informer.start();
  await applying;
  listed = true;
  report(index.allRejections());
  await ipam.start();
  log.info({ configMaps: informer.size, registrations: index.registrationKeyCount, networks: index.networks().length }, 'registrations listed');
  void syncReservations();
  // Pods this node already serves (agent restart): their settings, for drift reports.
  try {
    const mine = (await claims.list({ labelSelector: `${CLAIM_LABELS.node}=${opts.nodeName}` })).items;
    for (const c of mine) {
      const s = c.spec.settings as ResolvedSettings | undefined;
      if (s && c.spec.pod.uid) running.set(attachmentKey(c.spec.pod.namespace, c.spec.pod.name, s.network), s);
    }
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'could not list this node’s claims; drift reports start empty');
  }
  queue.start();
  let server: CniSocketServer;
  try {
    const onReport = (r: ReportRequest) => {
      log.warn({ namespace: r.namespace, pod: r.name, uid: r.uid, containerId: r.containerId, reason: r.reason }, r.message);
      events.emit(podTarget(r), 'Warning', EVENT_REASONS.duplicate, r.message);
    };
    server = await startCniSocket(opts.socketPath ?? DEFAULT_AGENT_SOCKET, lookupHandler({ index, log, assign, deviceFor, onRejected, ...(opts.poolOf ? { poolOf: opts.poolOf } : {}) }), log, onReport);
  } catch (e) {
    await informer.stop();
    await queue.stop();
    await ipam.stop();
    throw e;
  }
  log.info({ socket: server.path, networks: index.networks().length, registrations: index.registrationKeyCount }, 'node agent ready');

  return {
    index,
    socketPath: server.path,
    clients,
    events,
    running,
    drainReleases: () => queue.scan(),
    syncReservations,
    ipam,
    async stop() {
      await server.close();
      await ipam.stop();
      await informer.stop();
      await queue.stop();
      await reservationsRunning;
      podResources?.close();
      await events.flush();
    },
  };
}
