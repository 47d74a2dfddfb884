/**
 * A fake kubelet, honest about the parts a device plugin sees: gRPC over unix sockets, both
 * registration modes, and the file-system effects of a kubelet (re)start.
 *  - legacy: serves v1beta1.Registration on <dir>/device-plugins/kubelet.sock; on Register it checks
 *    the version and resource name like kubelet, dials <dir>/device-plugins/<endpoint> (waiting up
 *    to 10 s for it, as kubelet's blocking dial does), asks for the plugin options, answers Register,
 *    and only then opens ListAndWatch (kubelet's connectClient, then `go runClient`).
 *  - plugin-watcher: watches <dir>/plugins_registry/, calls GetInfo on every new socket, validates
 *    it, connects to the advertised endpoint and reports NotifyRegistrationStatus.
 *  - a second registration of the same resource does what kubelet's
 *    devicemanager/plugin/v1beta1/handler.go does with its clients map keyed by resource name: the
 *    new client replaces the old one (Allocate goes to the newest), the old one is NOT closed and its
 *    ListAndWatch keeps feeding the resource (kubernetes#124716; the dedupe fix, PR #139765, is not
 *    merged); when any client's stream ends, kubelet looks up the resource's *current* client,
 *    disconnects it and marks the resource's devices Unhealthy (PluginDisconnected). So a plugin that
 *    registers twice gets two streams, and one that ends the older stream loses the newer one.
 *  - registerDelayMs: a loaded kubelet, slow to answer. kubelet's Register handler ignores the
 *    caller's cancellation, so a plugin that gives up still gets registered when kubelet gets to it.
 *  - restart(): the socket goes away and device-plugins/ is wiped (the checkpoint survives, as with
 *    kubelet), then it comes back with a new kubelet.sock and re-scans plugins_registry/.
 *  - allocate() writes kubelet_internal_checkpoint like kubelet's device manager does.
 * It uses the project's .proto definitions, the same ones the plugin serves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  DEVICE_PLUGIN_API_VERSION,
  KUBELET_SOCKET_NAME,
  devicePluginService,
  kubeletRegistrationService,
  pluginWatcherService,
  unixAddress,
  type AllocateResponseMsg,
  type DeviceMsg,
  type DevicePluginOptionsMsg,
  type ListAndWatchResponseMsg,
  type PluginInfoMsg,
  type PreferredAllocationResponseMsg,
  type RegisterRequestMsg,
} from '../../../src/proto';

export type FakeKubeletMode = 'legacy' | 'plugin-watcher';

export interface RegistrationRecord {
  resource: string;
  accepted: boolean;
  error: string | null;
  mode: FakeKubeletMode;
  at: number;
}

type Cb<T> = (err: grpc.ServiceError | null, res?: T) => void;
interface DevicePluginClient extends grpc.Client {
  GetDevicePluginOptions(req: object, cb: Cb<DevicePluginOptionsMsg>): void;
  ListAndWatch(req: object): grpc.ClientReadableStream<ListAndWatchResponseMsg>;
  Allocate(req: object, cb: Cb<AllocateResponseMsg>): void;
  GetPreferredAllocation(req: object, cb: Cb<PreferredAllocationResponseMsg>): void;
  PreStartContainer(req: object, cb: Cb<object>): void;
}
interface RegistrationClient extends grpc.Client {
  GetInfo(req: object, cb: Cb<PluginInfoMsg>): void;
  NotifyRegistrationStatus(req: object, cb: Cb<object>): void;
}

export interface PluginConnection {
  resource: string;
  /** 1, 2, … in the order kubelet connected, per kubelet run. */
  seq: number;
  endpoint: string;
  client: DevicePluginClient;
  options: DevicePluginOptionsMsg | null;
  devices: DeviceMsg[] | null;
  /** Number of ListAndWatch messages received. */
  updates: number;
  streamOpen: boolean;
  stream: grpc.ClientReadableStream<ListAndWatchResponseMsg> | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const promisify = <T>(fn: (cb: Cb<T>) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res as T))));

const RESOURCE_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export class FakeKubelet {
  readonly devicePluginsDir: string;
  readonly registryDir: string;
  readonly registrations: RegistrationRecord[] = [];
  readonly plugins = new Map<string, PluginConnection>();
  /** Every client kubelet connected to a plugin since it (re)started, the replaced ones included. */
  readonly connections: PluginConnection[] = [];
  /** Return an error text to refuse a registration (called after the kubelet-side checks). */
  admit: (resource: string) => string | null = () => null;
  /** A loaded kubelet: wait this long before handling a registration (legacy Register, or after GetInfo). */
  registerDelayMs = 0;
  /** Register requests received, answered or not (the records above are written when handled). */
  registerCalls = 0;
  private server: grpc.Server | null = null;
  /** Bumped on every stop: work a stopped kubelet had in flight does nothing (the process is gone). */
  private generation = 0;
  /** What kubelet's device manager holds per resource: the last list any stream sent. */
  private readonly resourceDevices = new Map<string, DeviceMsg[]>();
  private watcher: fs.FSWatcher | null = null;
  private seenSockets = new Map<string, string>(); // registry socket path -> identity handled
  private checkpoint: Array<{ PodUID: string; ContainerName: string; ResourceName: string; DeviceIDs: Record<string, string[]> }> = [];
  private podSeq = 0;

  constructor(
    readonly dir: string,
    readonly mode: FakeKubeletMode,
  ) {
    this.devicePluginsDir = path.join(dir, 'device-plugins');
    this.registryDir = path.join(dir, 'plugins_registry');
  }

  get checkpointPath(): string {
    return path.join(this.devicePluginsDir, 'kubelet_internal_checkpoint');
  }

  async start(): Promise<void> {
    fs.mkdirSync(this.devicePluginsDir, { recursive: true });
    if (this.mode === 'plugin-watcher') fs.mkdirSync(this.registryDir, { recursive: true });
    // kubelet's device manager starts by clearing its directory, keeping only the checkpoint.
    for (const f of fs.readdirSync(this.devicePluginsDir)) {
      if (f !== 'kubelet_internal_checkpoint') fs.rmSync(path.join(this.devicePluginsDir, f), { recursive: true, force: true });
    }
    const server = new grpc.Server();
    server.addService(kubeletRegistrationService().service, {
      Register: (call: grpc.ServerUnaryCall<RegisterRequestMsg, object>, cb: grpc.sendUnaryData<object>) => {
        this.registerCalls++;
        const gen = this.generation;
        // kubelet's handler goes on even if the plugin cancels the call (it ignores the context).
        this.onRegister(call.request, gen).then(
          (afterAnswer) => {
            cb(null, {});
            afterAnswer?.();
          },
          (e: Error) => cb({ code: grpc.status.UNKNOWN, details: e.message }),
        );
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(unixAddress(path.join(this.devicePluginsDir, KUBELET_SOCKET_NAME)), grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    this.server = server;
    if (this.mode === 'plugin-watcher') {
      this.watcher = fs.watch(this.registryDir, () => this.scanRegistry());
      this.scanRegistry();
    }
  }

  async stop(): Promise<void> {
    this.generation++;
    this.watcher?.close();
    this.watcher = null;
    this.seenSockets.clear();
    for (const c of this.connections) this.disconnect(c);
    this.connections.length = 0;
    this.plugins.clear();
    this.resourceDevices.clear();
    const server = this.server;
    this.server = null;
    if (server) server.forceShutdown();
    fs.rmSync(path.join(this.devicePluginsDir, KUBELET_SOCKET_NAME), { force: true });
  }

  /** Like a kubelet restart: gone (socket removed, directory wiped), then back. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Wait until `pred` holds (checked on a short poll); the bound is generous on purpose. */
  async waitFor(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > until) throw new Error(`fake kubelet: timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The resource's devices as kubelet holds them (fed by every stream of the resource). */
  devices(resource: string): DeviceMsg[] | null {
    return this.resourceDevices.get(resource) ?? null;
  }

  /** ListAndWatch streams open for a resource, the replaced clients' included. */
  liveStreams(resource: string): number {
    return this.connections.filter((c) => c.resource === resource && c.streamOpen).length;
  }

  healthyIds(resource: string): string[] {
    return (this.devices(resource) ?? []).filter((d) => d.health === 'Healthy').map((d) => d.ID);
  }

  private conn(resource: string): PluginConnection {
    const p = this.plugins.get(resource);
    if (!p) throw new Error(`fake kubelet: no plugin registered for ${resource}`);
    return p;
  }

  /** Allocate devices to one container of a new pod, recording it in the checkpoint. */
  async allocate(resource: string, ids: string[]): Promise<{ podUid: string; response: AllocateResponseMsg }> {
    const p = this.conn(resource);
    const response = await promisify<AllocateResponseMsg>((cb) => p.client.Allocate({ container_requests: [{ devices_ids: ids }] }, cb));
    const podUid = `pod-${++this.podSeq}`;
    this.checkpoint.push({ PodUID: podUid, ContainerName: 'c0', ResourceName: resource, DeviceIDs: { '-1': ids } });
    this.writeCheckpoint();
    return { podUid, response };
  }

  /** Send an arbitrary Allocate request (for bad-input tests); no checkpoint entry. */
  rawAllocate(resource: string, request: object): Promise<AllocateResponseMsg> {
    const p = this.conn(resource);
    return promisify<AllocateResponseMsg>((cb) => p.client.Allocate(request, cb));
  }

  preferred(resource: string, available: string[], mustInclude: string[], size: number): Promise<string[]> {
    const p = this.conn(resource);
    return promisify<PreferredAllocationResponseMsg>((cb) =>
      p.client.GetPreferredAllocation({ container_requests: [{ available_deviceIDs: available, must_include_deviceIDs: mustInclude, allocation_size: size }] }, cb),
    ).then((r) => r.container_responses[0]?.deviceIDs ?? []);
  }

  rawPreferred(resource: string, request: object): Promise<PreferredAllocationResponseMsg> {
    const p = this.conn(resource);
    return promisify<PreferredAllocationResponseMsg>((cb) => p.client.GetPreferredAllocation(request, cb));
  }

  /** The pod is gone: kubelet drops it from its checkpoint. */
  release(podUid: string): void {
    this.checkpoint = this.checkpoint.filter((e) => e.PodUID !== podUid);
    this.writeCheckpoint();
  }

  private writeCheckpoint(): void {
    const data = { Data: { PodDeviceEntries: this.checkpoint, RegisteredDevices: {} }, Checksum: 0 };
    const tmp = `${this.checkpointPath}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(data));
    fs.renameSync(tmp, this.checkpointPath);
  }

  private record(resource: string, error: string | null): void {
    this.registrations.push({ resource, accepted: error === null, error, mode: this.mode, at: Date.now() });
  }

  /** kubelet's checks on a registration, then the test's own verdict. */
  private validate(version: string | string[], resource: string): string | null {
    const versions = Array.isArray(version) ? version : [version];
    if (!versions.includes(DEVICE_PLUGIN_API_VERSION)) return `Requested device plugin version(s) ${versions.join(',')} not supported`;
    if (!RESOURCE_RE.test(resource) || resource.startsWith('kubernetes.io/')) return `invalid extended resource name "${resource}"`;
    return this.admit(resource);
  }

  /** Resolves with what kubelet does right after answering (start the client's ListAndWatch). */
  private async onRegister(req: RegisterRequestMsg, gen: number): Promise<(() => void) | null> {
    if (this.registerDelayMs > 0) await sleep(this.registerDelayMs);
    if (gen !== this.generation) throw new Error('kubelet stopped'); // the process is gone: nothing happens
    const refusal = this.validate(req.version, req.resource_name);
    if (refusal) {
      this.record(req.resource_name, refusal);
      throw new Error(refusal);
    }
    if (path.basename(req.endpoint) !== req.endpoint) {
      this.record(req.resource_name, 'endpoint must be a file name in device-plugins/');
      throw new Error('endpoint must be a file name in device-plugins/');
    }
    // kubelet connects (dial + GetDevicePluginOptions) before it answers; a failure fails Register.
    let conn: PluginConnection;
    try {
      conn = await this.connect(req.resource_name, path.join(this.devicePluginsDir, req.endpoint), gen);
    } catch (e) {
      const error = `failed to connect to ${req.endpoint}: ${(e as Error).message}`;
      this.record(req.resource_name, error);
      throw new Error(error);
    }
    this.record(req.resource_name, null);
    return () => this.run(conn, gen);
  }

  private scanRegistry(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.registryDir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n.startsWith('.')) continue;
      const p = path.join(this.registryDir, n);
      let id: string;
      try {
        const st = fs.statSync(p, { bigint: true });
        if (!st.isSocket()) continue;
        id = `${st.ino}:${st.ctimeNs}`; // a re-created socket is a new plugin even if the inode is reused
      } catch {
        continue;
      }
      if (this.seenSockets.get(p) === id) continue;
      this.seenSockets.set(p, id);
      void this.registerViaWatcher(p, id);
    }
    // A removed socket deregisters its plugin.
    for (const [p] of this.seenSockets) {
      if (fs.existsSync(p)) continue;
      this.seenSockets.delete(p);
      for (const c of [...this.plugins.values()]) {
        if (c.endpoint !== p) continue;
        this.disconnect(c);
        this.plugins.delete(c.resource);
      }
    }
  }

  private async registerViaWatcher(socket: string, id: string): Promise<void> {
    const Reg = pluginWatcherService();
    const client = new Reg(unixAddress(socket), grpc.credentials.createInsecure()) as RegistrationClient;
    let info: PluginInfoMsg;
    try {
      info = await promisify<PluginInfoMsg>((cb) => client.GetInfo({}, cb));
    } catch {
      // Like kubelet's plugin reconciler: a socket that exists but does not answer yet (bound, not
      // listening) stays wanted and is tried again, as long as it is the same socket.
      client.close();
      if (this.server && this.seenSockets.get(socket) === id) setTimeout(() => void this.registerViaWatcher(socket, id), 100);
      return;
    }
    const gen = this.generation;
    try {
      if (this.registerDelayMs > 0) await sleep(this.registerDelayMs);
      if (gen !== this.generation) return;
      let refusal = info.type !== 'DevicePlugin' ? `unsupported plugin type "${info.type}"` : this.validate(info.supported_versions, info.name);
      let conn: PluginConnection | null = null;
      if (!refusal) {
        try {
          conn = await this.connect(info.name, info.endpoint, gen);
        } catch (e) {
          refusal = `cannot connect to ${info.endpoint}: ${(e as Error).message}`;
        }
      }
      this.record(info.name, refusal);
      if (conn) this.run(conn, gen);
      await promisify((cb) => client.NotifyRegistrationStatus({ plugin_registered: refusal === null, error: refusal ?? '' }, cb));
    } catch {
      // the socket went away mid-registration; a new one will be seen by the watcher
    } finally {
      client.close();
    }
  }

  /**
   * kubelet's connectClient: the new client replaces the resource's current one in kubelet's map
   * (the old one is not closed), then a blocking dial (10 s) and GetDevicePluginOptions.
   */
  private async connect(resource: string, endpoint: string, gen: number): Promise<PluginConnection> {
    const DP = devicePluginService();
    const client = new DP(unixAddress(endpoint), grpc.credentials.createInsecure()) as DevicePluginClient;
    const conn: PluginConnection = { resource, seq: this.connections.length + 1, endpoint, client, options: null, devices: null, updates: 0, streamOpen: false, stream: null };
    this.plugins.set(resource, conn);
    try {
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
      conn.options = await promisify<DevicePluginOptionsMsg>((cb) => client.GetDevicePluginOptions({}, cb));
    } catch (e) {
      if (this.plugins.get(resource) === conn) this.plugins.delete(resource);
      client.close();
      throw e;
    }
    if (gen !== this.generation) {
      client.close();
      throw new Error('kubelet stopped');
    }
    this.connections.push(conn);
    return conn;
  }

  /** kubelet's runClient: consume ListAndWatch; when it ends, disconnect the resource's current client. */
  private run(conn: PluginConnection, gen: number): void {
    if (gen !== this.generation) return;
    const stream = conn.client.ListAndWatch({});
    conn.stream = stream;
    conn.streamOpen = true;
    stream.on('data', (m: ListAndWatchResponseMsg) => {
      conn.devices = m.devices;
      conn.updates++;
      this.resourceDevices.set(conn.resource, m.devices);
    });
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      conn.streamOpen = false;
      if (gen !== this.generation) return; // kubelet itself is stopping
      // Released kubelets look the client up by resource name only: this is the newest client,
      // which need not be the one whose stream ended.
      const current = this.plugins.get(conn.resource);
      if (!current) return;
      this.plugins.delete(conn.resource);
      this.disconnect(current);
      // PluginDisconnected: every device of the resource becomes Unhealthy.
      const devs = this.resourceDevices.get(conn.resource);
      if (devs) this.resourceDevices.set(conn.resource, devs.map((d) => ({ ...d, health: 'Unhealthy' })));
    };
    stream.on('error', end);
    stream.on('end', end);
  }

  private disconnect(c: PluginConnection): void {
    c.stream?.cancel();
    c.streamOpen = false;
    c.client.close();
  }
}
