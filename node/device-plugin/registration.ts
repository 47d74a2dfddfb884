/**
 * Registration with kubelet, in one of two modes:
 *  - legacy: our socket in device-plugins/, Register() on device-plugins/kubelet.sock. kubelet wipes
 *    device-plugins/ when it restarts, so the directory is watched: a new kubelet.sock or our
 *    socket gone means re-create the socket and register again, at once.
 *  - plugin-watcher: our socket in plugins_registry/ serves GetInfo/NotifyRegistrationStatus too;
 *    kubelet dials it. A refusal is retried by re-creating the socket, which kubelet's watcher sees
 *    as a new plugin.
 * Refusals and unreachable kubelets are retried with exponential backoff, never abandoned.
 *
 * One Register per pool is in flight at a time, and it has no deadline: kubelet goes on with a
 * registration whose caller gave up (its handler ignores the cancellation) and then opens a second
 * ListAndWatch stream, which kubelet keeps feeding alongside the first; ending either stream makes
 * released kubelets disconnect the newest client. So a call ends only with kubelet's answer or with
 * the connection to kubelet (its process is gone); a slow answer is logged, not retried.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../src/log';
import { DEVICE_PLUGIN_API_VERSION, KUBELET_SOCKET_NAME, kubeletRegistrationService, unixAddress, type RegisterRequestMsg, type RegistrationStatusMsg } from '../../src/proto';
import { DirWatch, fileIdentity } from './dir-watch';
import type { PluginServer } from './plugin-server';

export type RegistrationMode = 'legacy' | 'plugin-watcher';
export type RegistrationState = 'pending' | 'registered' | 'refused' | 'unreachable';

export interface RegistrarOptions {
  mode: RegistrationMode;
  kubeletDir: string;
  log: Logger;
  /** Safety rescan period of the watched directory. */
  rescanMs?: number;
  /** First retry delay; doubles up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Log a warning when kubelet has not answered a Register after this long (the call goes on). */
  slowRegisterMs?: number;
  onStateChange?: (resource: string, state: RegistrationState, detail: string | null) => void;
}

interface Entry {
  server: PluginServer;
  state: RegistrationState;
  attempts: number;
  retry: NodeJS.Timeout | null;
  /** identity of the kubelet.sock we registered with (legacy) */
  kubeletId: string | null;
  busy: boolean;
  again: boolean;
  /** The Register call waiting for kubelet's answer (legacy). */
  inflight: InFlight | null;
}

interface InFlight {
  cancel(): void;
  /** cancelled because the pool or the daemon stops: not a failure to retry */
  abandoned: boolean;
}

export const devicePluginsDir = (kubeletDir: string) => path.join(kubeletDir, 'device-plugins');
export const pluginsRegistryDir = (kubeletDir: string) => path.join(kubeletDir, 'plugins_registry');

/** Socket file name for a resource: readable, unique per full name, short enough for sun_path. */
export function socketName(resource: string): string {
  const name = resource.split('/').pop() ?? resource;
  const hash = createHash('sha256').update(resource).digest('hex').slice(0, 8);
  return `sriov-underlay-${name.slice(0, 40)}-${hash}.sock`;
}

export class Registrar {
  private readonly entries = new Map<string, Entry>();
  private readonly watch: DirWatch;
  private readonly dir: string;
  private stopped = false;

  constructor(private readonly opts: RegistrarOptions) {
    this.dir = opts.mode === 'legacy' ? devicePluginsDir(opts.kubeletDir) : pluginsRegistryDir(opts.kubeletDir);
    this.watch = new DirWatch(this.dir, () => this.checkAll(), opts.rescanMs ?? 5000);
  }

  socketPathFor(resource: string): string {
    return path.join(this.dir, socketName(resource));
  }

  start(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    this.watch.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch.stop();
    for (const e of this.entries.values()) this.forget(e);
  }

  state(resource: string): RegistrationState | undefined {
    return this.entries.get(resource)?.state;
  }

  /** Track a started server and register it. */
  add(server: PluginServer): void {
    const e: Entry = { server, state: 'pending', attempts: 0, retry: null, kubeletId: null, busy: false, again: false, inflight: null };
    this.entries.set(server.resource, e);
    void this.check(e, false);
  }

  remove(resource: string): void {
    const e = this.entries.get(resource);
    if (e) this.forget(e);
    this.entries.delete(resource);
  }

  private forget(e: Entry): void {
    if (e.retry) clearTimeout(e.retry);
    e.retry = null;
    if (e.inflight) {
      e.inflight.abandoned = true;
      e.inflight.cancel();
    }
  }

  /** plugin-watcher mode: kubelet's NotifyRegistrationStatus for one of our sockets. */
  registrationStatus(resource: string, status: RegistrationStatusMsg): void {
    const e = this.entries.get(resource);
    if (!e) return;
    if (status.plugin_registered) {
      e.attempts = 0;
      this.setState(e, 'registered', null);
    } else {
      this.setState(e, 'refused', status.error || 'kubelet gave no reason');
      this.scheduleRetry(e);
    }
  }

  private checkAll(): void {
    for (const e of this.entries.values()) void this.check(e, false);
  }

  private setState(e: Entry, state: RegistrationState, detail: string | null): void {
    const changed = e.state !== state;
    e.state = state;
    if (changed || detail) {
      const level = state === 'registered' || state === 'pending' ? 'info' : 'warn';
      this.opts.log[level]({ resource: e.server.resource, mode: this.opts.mode, state, detail }, `registration ${state}`);
    }
    this.opts.onStateChange?.(e.server.resource, state, detail);
  }

  private scheduleRetry(e: Entry): void {
    if (e.retry || this.stopped) return;
    const base = this.opts.backoffMs ?? 200;
    const delay = Math.min(base * 2 ** e.attempts, this.opts.maxBackoffMs ?? 10_000) * (0.8 + Math.random() * 0.4);
    e.attempts++;
    e.retry = setTimeout(() => {
      e.retry = null;
      void this.check(e, true);
    }, delay);
  }

  private async check(e: Entry, isRetry: boolean): Promise<void> {
    if (this.stopped || this.entries.get(e.server.resource) !== e) return;
    if (e.busy) {
      // Also when kubelet.sock was replaced: a kubelet that exited broke our connection, so its
      // Register ends on its own; one that only re-created its socket still answers it.
      e.again = true;
      return;
    }
    e.busy = true;
    try {
      if (this.opts.mode === 'legacy') await this.checkLegacy(e, isRetry);
      else await this.checkWatcher(e, isRetry);
    } catch (err) {
      this.opts.log.error({ resource: e.server.resource, err: (err as Error).message }, 'registration check failed');
      this.scheduleRetry(e);
    } finally {
      e.busy = false;
      if (e.again) {
        e.again = false;
        void this.check(e, false);
      }
    }
  }

  private async checkWatcher(e: Entry, isRetry: boolean): Promise<void> {
    if (!e.server.socketIntact() || (isRetry && e.state === 'refused')) {
      // A new socket file is what makes kubelet's watcher look at us again.
      await e.server.restart();
      this.setState(e, 'pending', isRetry ? 'socket re-created to retry registration' : 'socket was missing; re-created');
    }
  }

  private async checkLegacy(e: Entry, isRetry: boolean): Promise<void> {
    let restarted = false;
    if (!e.server.socketIntact()) {
      await e.server.restart();
      restarted = true;
    }
    const kubeletId = fileIdentity(path.join(this.dir, KUBELET_SOCKET_NAME));
    if (kubeletId === null) {
      if (e.state !== 'unreachable') this.setState(e, 'unreachable', `${KUBELET_SOCKET_NAME} not present`);
      e.kubeletId = null;
      return; // the directory watch brings us back when kubelet creates its socket
    }
    const newKubelet = kubeletId !== e.kubeletId;
    if (e.state === 'registered' && !newKubelet && !restarted) return;
    if (e.retry && !newKubelet && !restarted && !isRetry) return; // a retry is already scheduled
    if (e.retry) {
      clearTimeout(e.retry);
      e.retry = null;
    }
    if (newKubelet) e.attempts = 0;
    e.kubeletId = kubeletId;
    try {
      await this.register(e);
      e.attempts = 0;
      this.setState(e, 'registered', null);
    } catch (err) {
      if (err === ABANDONED) {
        return; // the pool or the daemon is stopping
      }
      const ge = err as grpc.ServiceError;
      const refused = typeof ge.code === 'number' && ge.code !== grpc.status.UNAVAILABLE && ge.code !== grpc.status.DEADLINE_EXCEEDED;
      this.setState(e, refused ? 'refused' : 'unreachable', ge.details || ge.message);
      this.scheduleRetry(e);
    }
  }

  /** One Register, no deadline (see the file comment); settles with kubelet's answer, a broken connection or ABANDONED. */
  private register(e: Entry): Promise<void> {
    const Client = kubeletRegistrationService();
    const client = new Client(unixAddress(path.join(this.dir, KUBELET_SOCKET_NAME)), grpc.credentials.createInsecure()) as grpc.Client & {
      Register(req: RegisterRequestMsg, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): grpc.ClientUnaryCall;
    };
    const req: RegisterRequestMsg = {
      version: DEVICE_PLUGIN_API_VERSION,
      endpoint: path.basename(e.server.socketPath),
      resource_name: e.server.resource,
      options: { pre_start_required: false, get_preferred_allocation_available: true },
    };
    const slowMs = this.opts.slowRegisterMs ?? 30_000;
    const started = Date.now();
    return new Promise<void>((resolve, reject) => {
      const slow = setInterval(() => {
        this.opts.log.warn(
          { resource: e.server.resource, waitingMs: Date.now() - started },
          'kubelet has not answered Register yet; waiting for its answer (registering again would give kubelet a second ListAndWatch stream)',
        );
      }, slowMs);
      slow.unref();
      const f: InFlight = { abandoned: false, cancel: () => call.cancel() };
      const call = client.Register(req, {}, (err) => {
        clearInterval(slow);
        client.close();
        if (e.inflight === f) e.inflight = null;
        if (f.abandoned) reject(ABANDONED);
        else if (err) reject(err);
        else resolve();
      });
      e.inflight = f;
    });
  }
}

/** A Register dropped on purpose: its pool was removed or the daemon is stopping. */
const ABANDONED = new Error('registration abandoned');
