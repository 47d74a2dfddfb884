/**
 * The device-plugin daemon: discovery, pools config, health and allocations reconciled into one
 * PoolState per pool, each served by its own gRPC server and registered with kubelet.
 *
 * Everything that can change funnels into one serialized `refresh()`:
 *  - a periodic cheap rescan (sysfs change markers, config file stamp, kubelet checkpoint mtime);
 *  - link events from netlink (PF carrier; VF netdevs come and go with sriov_numvfs and rebinds);
 *  - the config directory changing (kubelet swaps the ConfigMap's ..data symlink).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../src/log';
import { AllocationTracker, CHECKPOINT_FILE } from './allocations';
import { ConfigFileError, loadPoolsConfig, rejectOverlaps, type PoolsConfig } from './config';
import { DirWatch } from './dir-watch';
import { currentMarkers, discover, markersOf, type Discovery } from './discovery';
import { openLinkState, type LinkStateSource } from './link-state';
import { DevicePluginMetrics, type MetricsSource } from './metrics';
import { PluginServer } from './plugin-server';
import { PoolState, reconcile } from './pool-state';
import { devicePluginsDir, pluginsRegistryDir, Registrar, type RegistrationMode } from './registration';

export interface DevicePluginDaemonOptions {
  kubeletDir: string;
  sysfsRoot: string;
  configPath: string;
  /** Directory for NPWG device-info files; null disables them. */
  devinfoDir: string | null;
  registrationMode: 'auto' | RegistrationMode;
  log: Logger;
  /** Cheap rescan period (sysfs change markers, config stamp, checkpoint). */
  rescanMs?: number;
  /** Safety rescan of the kubelet socket directory (fs.watch does the fast path). */
  registryRescanMs?: number;
  backoffMs?: number;
  maxBackoffMs?: number;
  /** PF carrier source; default: src/netlink in the daemon's netns. */
  linkState?: LinkStateSource;
}

interface Served {
  state: PoolState;
  server: PluginServer;
}

export function resolveRegistrationMode(mode: 'auto' | RegistrationMode, kubeletDir: string): RegistrationMode {
  if (mode !== 'auto') return mode;
  return fs.existsSync(pluginsRegistryDir(kubeletDir)) ? 'plugin-watcher' : 'legacy';
}

export class DevicePluginDaemon implements MetricsSource {
  readonly mode: RegistrationMode;
  readonly metrics: DevicePluginMetrics;
  private readonly log: Logger;
  private readonly registrar: Registrar;
  private readonly allocations: AllocationTracker;
  private readonly linkState: LinkStateSource;
  private readonly served = new Map<string, Served>();
  private discovery: Discovery = { pciAddrs: [], pfs: [], vfs: [] };
  private markers: string | null = null;
  private config: PoolsConfig = { pools: [], errors: [] };
  private configStamp = '\u0000';
  private configFileError: string | null = null;
  private reported = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  private pendingRefresh = false;
  /** Something reconcile depends on changed (link event, first run); see refreshInner. */
  private dirty = true;
  private timer: NodeJS.Timeout | null = null;
  private configWatch: DirWatch | null = null;
  private unsubscribeLinks: (() => void) | null = null;
  private running = false;
  /** PF netdevs fenced by the node policy (see fence()). */
  private readonly fenced = new Set<string>();

  constructor(private readonly opts: DevicePluginDaemonOptions) {
    this.log = opts.log;
    this.mode = resolveRegistrationMode(opts.registrationMode, opts.kubeletDir);
    this.allocations = new AllocationTracker(path.join(devicePluginsDir(opts.kubeletDir), CHECKPOINT_FILE));
    this.linkState = opts.linkState ?? openLinkState(opts.log);
    this.metrics = new DevicePluginMetrics(this);
    this.registrar = new Registrar({
      mode: this.mode,
      kubeletDir: opts.kubeletDir,
      log: opts.log,
      rescanMs: opts.registryRescanMs ?? 5000,
      backoffMs: opts.backoffMs ?? 200,
      maxBackoffMs: opts.maxBackoffMs ?? 10_000,
      onStateChange: (resource, state) => this.metrics.registrations.inc({ resource, result: state }),
    });
  }

  async start(): Promise<void> {
    this.running = true;
    this.log.info({ mode: this.mode, kubeletDir: this.opts.kubeletDir, sysfsRoot: this.opts.sysfsRoot, config: this.opts.configPath }, 'device plugin starting');
    this.registrar.start();
    await this.refresh('start');
    this.unsubscribeLinks = this.linkState.subscribe(() => {
      this.dirty = true;
      this.requestRefresh();
    });
    this.configWatch = new DirWatch(path.dirname(this.opts.configPath), () => this.requestRefresh(), 60_000, 50);
    this.configWatch.start();
    this.timer = setInterval(() => this.requestRefresh(), this.opts.rescanMs ?? 500);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.configWatch?.stop();
    this.unsubscribeLinks?.();
    await this.chain;
    await this.registrar.stop();
    await Promise.all([...this.served.values()].map((s) => s.server.stop()));
    this.served.clear();
    this.linkState.close();
  }

  /** Pools being served now (config pools, plus removed pools still draining). */
  poolStates(): PoolState[] {
    return [...this.served.values()].map((s) => s.state);
  }

  server(resource: string): PluginServer | undefined {
    return this.served.get(resource)?.server;
  }

  /** The current config problems, one line each (naming pool and field). */
  configProblems(): string[] {
    return this.configFileError ? [this.configFileError, ...this.config.errors] : [...this.config.errors];
  }

  // MetricsSource
  pools(): ReturnType<MetricsSource['pools']> {
    return this.poolStates().map((st) => ({
      resource: st.resource,
      ...st.counts(),
      allocated: this.allocations.allocatedCount(st.resource, st.devices.keys()),
      registered: this.registrar.state(st.resource) === 'registered',
    }));
  }

  configErrors(): number {
    return this.configProblems().length;
  }

  /**
   * The node policy is about to rewrite this PF's sriov_numvfs: advertise its VFs Unhealthy (so
   * Allocate refuses them from now on) or, with on=false, stop. Resolves once the pools carry it.
   */
  async fence(pfNetdev: string, on: boolean): Promise<void> {
    if (on === this.fenced.has(pfNetdev)) return;
    if (on) this.fenced.add(pfNetdev);
    else this.fenced.delete(pfNetdev);
    this.dirty = true;
    this.requestRefresh();
    await this.chain;
  }

  /** Allocated in any pool, by kubelet's checkpoint or an Allocate this daemon answered. */
  isAllocatedAnywhere(pciAddr: string): boolean {
    return [...this.served.keys()].some((r) => this.allocations.isAllocated(r, pciAddr));
  }

  /** Coalesce triggers: at most one refresh queued behind the running one. */
  requestRefresh(): void {
    if (this.pendingRefresh || !this.running) return;
    this.pendingRefresh = true;
    this.chain = this.chain.then(async () => {
      this.pendingRefresh = false;
      if (this.running) await this.refresh('trigger');
    });
  }

  private reportOnce(key: string, level: 'warn' | 'error', obj: object, msg: string): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.log[level](obj, msg);
  }

  private configStampNow(): string {
    try {
      const st = fs.statSync(this.opts.configPath);
      return `${fs.realpathSync(this.opts.configPath)}:${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch {
      return 'missing';
    }
  }

  private async refresh(why: string): Promise<void> {
    try {
      await this.refreshInner();
    } catch (e) {
      this.dirty = true; // try the whole reconcile again on the next rescan
      this.log.error({ err: (e as Error).message, why }, 'refresh failed');
    }
  }

  private hasDraining(): boolean {
    for (const s of this.served.values()) for (const d of s.state.devices.values()) if (d.draining) return true;
    return false;
  }

  /**
   * Reconcile only when an input changed: discovery, config, a link event, or allocations while
   * some device is draining (allocations decide nothing else). Keeps the periodic rescan of a large
   * tree from re-sorting 1,024 devices twice a second while kubelet is calling Allocate.
   */
  private async refreshInner(): Promise<void> {
    let dirty = this.dirty;
    this.dirty = false;
    if (this.allocations.refresh() && this.hasDraining()) dirty = true;
    if (this.markers === null || (await currentMarkers(this.opts.sysfsRoot, this.discovery)) !== this.markers) {
      const t0 = performance.now();
      this.discovery = discover(this.opts.sysfsRoot);
      // The markers as this discovery saw them: anything changing later shows up as a difference.
      this.markers = markersOf(this.discovery);
      this.log.info({ pfs: this.discovery.pfs.length, vfs: this.discovery.vfs.length, ms: Math.round(performance.now() - t0) }, 'discovered');
      dirty = true;
    }
    const stamp = this.configStampNow();
    if (stamp !== this.configStamp) {
      this.configStamp = stamp;
      this.loadConfig();
      dirty = true;
    }
    if (!dirty) return;
    const result = reconcile(
      new Map([...this.served].map(([r, s]) => [r, { pool: s.state.pool, devices: s.state.devices }])),
      {
        pools: this.config.pools,
        vfs: this.discovery.vfs,
        carrier: (ifname) => this.linkState.carrier(ifname),
        isAllocated: (r, p) => this.allocations.isAllocated(r, p),
        fenced: this.fenced,
      },
    );
    for (const o of result.overlaps) {
      this.reportOnce(`overlap:${o.pciAddr}:${o.resources.join(',')}`, 'warn', o, `VF ${o.pciAddr} matches several pools; the first one (${o.resources[0]}) gets it`);
    }
    for (const d of result.draining) {
      this.reportOnce(`drain:${d.resource}:${d.pciAddr}:${d.reason}`, 'warn', d, `allocated VF ${d.pciAddr} kept in ${d.resource} (Unhealthy) until freed: ${d.reason}`);
    }
    // Apply: new pools start serving, existing ones update, vanished ones go away.
    for (const [resource, plan] of result.plan) {
      let s = this.served.get(resource);
      if (!s) {
        const state = new PoolState(plan.pool);
        const server = new PluginServer({
          state,
          socketPath: this.registrar.socketPathFor(resource),
          log: this.log,
          devinfoDir: this.opts.devinfoDir,
          onAllocated: (r, pcis, ms) => {
            this.allocations.recordAllocate(r, pcis);
            this.metrics.allocations.inc({ resource: r, result: 'ok' });
            this.metrics.allocateSeconds.observe({ resource: r }, ms / 1000);
          },
          onRpcError: (rpc, code) => {
            if (rpc === 'Allocate') this.metrics.allocations.inc({ resource, result: grpc.status[code] ?? String(code) });
          },
          ...(this.mode === 'plugin-watcher' ? { onRegistrationStatus: (st) => this.registrar.registrationStatus(resource, st) } : {}),
        });
        s = { state, server };
        state.setDevices(plan.devices);
        try {
          await server.start();
        } catch (e) {
          // This pool only; the others go on. Retried on the next rescan.
          this.log.error({ resource, socket: server.socketPath, err: (e as Error).message }, 'pool server failed to start; will retry');
          this.dirty = true;
          continue;
        }
        this.served.set(resource, s);
        this.registrar.add(server);
        this.log.info({ resource, devices: plan.devices.size }, 'pool serving');
        continue;
      }
      s.state.pool = plan.pool;
      if (s.state.setDevices(plan.devices)) {
        const c = s.state.counts();
        this.log.info({ resource, total: c.total, healthy: c.healthy }, 'pool devices changed');
      }
    }
    for (const [resource, s] of [...this.served]) {
      if (result.plan.has(resource)) continue;
      s.state.setDevices(new Map()); // kubelet sees zero devices before the stream ends
      this.registrar.remove(resource);
      this.served.delete(resource);
      await s.server.stop();
      this.log.info({ resource }, 'pool no longer served');
    }
  }

  private loadConfig(): void {
    let parsed: PoolsConfig;
    try {
      parsed = loadPoolsConfig(this.opts.configPath);
    } catch (e) {
      if (!(e instanceof ConfigFileError)) throw e;
      this.configFileError = e.message;
      this.log.error({ err: e.message, keeping: this.config.pools.map((p) => p.resourceName) }, 'pools config unusable; keeping the previous pools');
      return;
    }
    this.configFileError = null;
    this.config = rejectOverlaps(parsed, this.discovery.vfs);
    for (const err of this.config.errors) this.log.error({ err }, 'pools config problem');
    this.log.info({ pools: this.config.pools.map((p) => `${p.resourcePrefix}/${p.resourceName}`), rejected: this.config.errors.length }, 'pools config loaded');
  }
}
