/**
 * The node agent: the composition of its modules, each testable on its own against the fake API
 * server:
 * - registration-watch.ts: ConfigMaps → registration index, rejection and drift Events;
 * - assign.ts: ADD's claim (fixed or pool), the pods running here, assigned Events;
 * - reservations.ts: pre-allocation for `reserve: true`, released only when confirmed gone;
 * - releases.ts: DEL's queued notes, matched to the exact holder on this node;
 * - src/ipam/pool-service.ts: claims and node informers, pool allocator, reconcile loop;
 * - cni-socket.ts + lookup.ts: the CNI's socket and its answers.
 * It runs inside the `sriov-underlay-node` daemon; `startAgent` is the one entry point it calls.
 */
import { CniCode, UnderlayError } from '../../src/errors';
import type { ClaimDeps, IPClaim } from '../../src/ipam/claims';
import { IpamService } from '../../src/ipam/pool-service';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../src/kube/client';
import { nodeExistsGetter, podUidGetter } from '../../src/kube/pods';
import type { Logger } from '../../src/log';
import { RegistrationIndex } from '../../src/registrations/index';
import type { Rejection, ResolvedSettings } from '../../src/registrations/types';
import { DEFAULT_AGENT_SOCKET, type LookupRequest, type ReportRequest } from '../../src/schemas/agent-protocol';
import { DEFAULT_RELEASE_QUEUE_DIR } from '../../src/schemas/claim-release';
import { assigner, attachmentKey, podTarget, type RunningPods } from './assign';
import { startCniSocket, type CniSocketServer } from './cni-socket';
import { EVENT_REASONS, EventRecorder, rejectionSeries } from './events';
import { lookupHandler } from './lookup';
import { PodResourcesClient } from './pod-resources';
import { RegistrationWatch } from './registration-watch';
import { Releases } from './releases';
import { Reservations } from './reservations';

export { CONFIGMAP_SELECTOR } from './registration-watch';

/** How long stop() waits for each of its steps. */
const STOP_WAIT_MS = 5_000;

/** True when p settled within ms (its outcome is not ours to report here), false after ms. */
async function settleWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}


export interface AgentOptions {
  nodeName: string;
  log: Logger;
  /** A kubeconfig file; default: in-cluster service account, then $KUBECONFIG. */
  kubeconfig?: string;
  /** Default /run/sriov-underlay/agent.sock. */
  socketPath?: string;
  /** Where the CNI's DEL leaves claim-release notes. Default /var/lib/sriov-underlay/release-queue. */
  releaseQueueDir?: string;
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
  /**
   * Time bounds (see cni-socket.ts): per API request (default 4 s), per pool allocation (7 s), per
   * CNI answer (8 s). Tests shorten them; the defaults fit the CNI's 10 s.
   */
  apiTimeoutMs?: number;
  allocationTimeoutMs?: number;
  answerDeadlineMs?: number;
}

export interface Agent {
  index: RegistrationIndex;
  socketPath: string;
  clients: KubeClients;
  events: EventRecorder;
  /** Pods on this node and the settings they got (for drift). */
  running: RunningPods;
  /** Run the release queue now (tests; the CNI's DEL note also triggers it through a directory watch). */
  drainReleases(): Promise<void>;
  /** Make missing reservations and drop orphaned ones now (also runs after each index change). */
  syncReservations(): Promise<void>;
  /** Pools (allocation, queued per pool on this node) and the reconcile loop. */
  ipam: IpamService;
  stop(): Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const log = opts.log.child({ component: 'agent', node: opts.nodeName });
  const clients = makeKubeClients(loadKubeConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), opts.apiTimeoutMs ? { timeoutMs: opts.apiTimeoutMs } : {});
  const index = new RegistrationIndex(opts.systemNamespace ? { systemNamespace: opts.systemNamespace } : {});
  const events = new EventRecorder(clients.core, opts.nodeName, log);
  const claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  const claimDeps: ClaimDeps = { claims, podUid: podUidGetter(clients.core), nodeExists: nodeExistsGetter(clients.core) };
  const running: RunningPods = new Map<string, ResolvedSettings>();
  const podResources = opts.podResourcesSocket === null ? null : new PodResourcesClient(log, opts.podResourcesSocket ?? undefined);
  const ipam = new IpamService({
    clients, claims, claimDeps, index, nodeName: opts.nodeName, log,
    ...(opts.reconcileIntervalMs !== undefined ? { reconcileIntervalMs: opts.reconcileIntervalMs } : {}),
    ...(opts.reconcileReportOnly !== undefined ? { reportOnly: opts.reconcileReportOnly } : {}),
    ...(opts.allocationTimeoutMs !== undefined ? { allocationTimeoutMs: opts.allocationTimeoutMs } : {}),
    ...(opts.apiTimeoutMs !== undefined ? { watchConnectMs: opts.apiTimeoutMs } : {}),
    onReleased: (f) => {
      const msg = `reconcile released ${f.ip} on network ${f.network} of pod ${f.pod.namespace}/${f.pod.name} (uid ${f.pod.uid}): ${f.reason}`;
      events.emit({ kind: 'Pod', namespace: f.pod.namespace, name: f.pod.name }, 'Normal', EVENT_REASONS.released, msg);
    },
  });
  const allocate = ipam.allocate.bind(ipam);
  const assign = assigner({ nodeName: opts.nodeName, index, allocate, claimDeps, events, log, running, sysfsRoot: opts.sysfsRoot ?? '/sys' });
  const reservations = new Reservations({ index, allocate, cached: () => ipam.claims(), claims, core: clients.core, log });
  const watch = new RegistrationWatch({ clients, index, events, log, running, onChange: () => void reservations.sync(), ...(opts.apiTimeoutMs ? { watchConnectMs: opts.apiTimeoutMs } : {}) });
  const releases = new Releases({
    nodeName: opts.nodeName, claimDeps, running, events, log,
    dir: opts.releaseQueueDir ?? DEFAULT_RELEASE_QUEUE_DIR,
    retryMs: opts.releaseRetryMs,
  });

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

  // ---- start ------------------------------------------------------------------------------------------
  await watch.start();
  await ipam.start();
  log.info({ configMaps: watch.configMaps, registrations: index.registrationKeyCount, networks: index.networks().length }, 'registrations listed');
  void reservations.sync();
  // Pods this node already serves (agent restart): their settings, for drift reports.
  for (const c of ipam.claims() ?? []) {
    const s = c.spec.settings as ResolvedSettings | undefined;
    if (s && c.spec.pod.uid && c.spec.node === opts.nodeName) {
      running.set(attachmentKey(c.spec.pod.namespace, c.spec.pod.name, s.network), s);
    }
  }
  releases.start();
  let server: CniSocketServer;
  try {
    const onReport = (r: ReportRequest) => {
      log.warn({ namespace: r.namespace, pod: r.name, uid: r.uid, containerId: r.containerId, reason: r.reason }, r.message);
      events.emit(podTarget(r), 'Warning', EVENT_REASONS.duplicate, r.message);
    };
    server = await startCniSocket(opts.socketPath ?? DEFAULT_AGENT_SOCKET, lookupHandler({ index, log, assign, deviceFor, onRejected, ...(opts.poolOf ? { poolOf: opts.poolOf } : {}) }), log, onReport, opts.answerDeadlineMs ? { answerDeadlineMs: opts.answerDeadlineMs } : {});
  } catch (e) {
    await watch.stop();
    await releases.stop();
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
    drainReleases: () => releases.drain(),
    syncReservations: () => reservations.sync(),
    ipam,
    async stop() {
      // Nothing stuck on a slow API server (a pass, a watch, an Event write) may hold the daemon
      // past its termination grace period: each step gets a bounded wait, then we go on (the next
      // agent redoes reservations and reconcile from the API; Events are best effort).
      const steps: [string, () => Promise<unknown>][] = [
        ['CNI socket', () => server.close()],
        ['IPAM (reconcile, informers)', () => ipam.stop()],
        ['registration watch', () => watch.stop()],
        ['release queue', () => releases.stop()],
        ['reservation pass and Event writes', () => Promise.all([reservations.idle(), events.flush()])],
      ];
      for (const [step, run] of steps) {
        if (!(await settleWithin(run(), STOP_WAIT_MS))) log.warn({ step, waitedMs: STOP_WAIT_MS }, 'node agent stop: step still in flight; going on');
      }
      podResources?.close();
    },
  };
}
