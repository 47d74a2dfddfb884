/**
 * A fake kubelet, honest about the parts a device plugin sees: gRPC over unix sockets, both
 * registration modes, and the file-system effects of a kubelet (re)start.
 *  - legacy: serves v1beta1.Registration on <dir>/device-plugins/kubelet.sock; on Register it checks
 *    the version and resource name like kubelet, dials <dir>/device-plugins/<endpoint>, asks for the
 *    plugin options and consumes ListAndWatch.
 *  - plugin-watcher: watches <dir>/plugins_registry/, calls GetInfo on every new socket, validates
 *    it, connects to the advertised endpoint and reports NotifyRegistrationStatus.
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
  endpoint: string;
  client: DevicePluginClient;
  options: DevicePluginOptionsMsg | null;
  devices: DeviceMsg[] | null;
  /** Number of ListAndWatch messages received. */
  updates: number;
  streamOpen: boolean;
  stream: grpc.ClientReadableStream<ListAndWatchResponseMsg> | null;
}

const promisify = <T>(fn: (cb: Cb<T>) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res as T))));

const RESOURCE_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export class FakeKubelet {
  readonly devicePluginsDir: string;
  readonly registryDir: string;
  readonly registrations: RegistrationRecord[] = [];
  readonly plugins = new Map<string, PluginConnection>();
  /** Return an error text to refuse a registration (called after the kubelet-side checks). */
  admit: (resource: string) => string | null = () => null;
  private server: grpc.Server | null = null;
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
        this.onRegister(call.request).then(
          () => cb(null, {}),
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
    this.watcher?.close();
    this.watcher = null;
    this.seenSockets.clear();
    for (const p of this.plugins.values()) this.disconnect(p);
    this.plugins.clear();
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

  devices(resource: string): DeviceMsg[] | null {
    return this.plugins.get(resource)?.devices ?? null;
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

  private async onRegister(req: RegisterRequestMsg): Promise<void> {
    const refusal = this.validate(req.version, req.resource_name);
    if (refusal) {
      this.record(req.resource_name, refusal);
      throw new Error(refusal);
    }
    if (path.basename(req.endpoint) !== req.endpoint) {
      this.record(req.resource_name, 'endpoint must be a file name in device-plugins/');
      throw new Error('endpoint must be a file name in device-plugins/');
    }
    this.record(req.resource_name, null);
    // kubelet answers Register first and connects to the plugin right after.
    // A failed connection leaves the plugin without a stream, as with kubelet; never an unhandled rejection.
    setImmediate(() => void this.connect(req.resource_name, path.join(this.devicePluginsDir, req.endpoint)).catch(() => undefined));
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
    try {
      let refusal = info.type !== 'DevicePlugin' ? `unsupported plugin type "${info.type}"` : this.validate(info.supported_versions, info.name);
      if (!refusal) {
        try {
          await this.connect(info.name, info.endpoint);
        } catch (e) {
          refusal = `cannot connect to ${info.endpoint}: ${(e as Error).message}`;
        }
      }
      this.record(info.name, refusal);
      await promisify((cb) => client.NotifyRegistrationStatus({ plugin_registered: refusal === null, error: refusal ?? '' }, cb));
    } catch {
      // the socket went away mid-registration; a new one will be seen by the watcher
    } finally {
      client.close();
    }
  }

  private async connect(resource: string, endpoint: string): Promise<void> {
    const old = this.plugins.get(resource);
    if (old) this.disconnect(old);
    const DP = devicePluginService();
    const client = new DP(unixAddress(endpoint), grpc.credentials.createInsecure()) as DevicePluginClient;
    const conn: PluginConnection = { resource, endpoint, client, options: null, devices: null, updates: 0, streamOpen: false, stream: null };
    this.plugins.set(resource, conn);
    conn.options = await promisify<DevicePluginOptionsMsg>((cb) => client.GetDevicePluginOptions({}, cb));
    // The plugin registered again while we asked (kubelet then drops the older connection): this
    // client is closed, and the newer connection streams instead.
    if (this.plugins.get(resource) !== conn) return;
    const stream = client.ListAndWatch({});
    conn.stream = stream;
    conn.streamOpen = true;
    stream.on('data', (m: ListAndWatchResponseMsg) => {
      conn.devices = m.devices;
      conn.updates++;
    });
    const ended = () => {
      conn.streamOpen = false;
    };
    stream.on('error', ended);
    stream.on('end', ended);
  }

  private disconnect(c: PluginConnection): void {
    c.stream?.cancel();
    c.streamOpen = false;
    c.client.close();
  }
}
