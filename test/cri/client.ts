/**
 * A small CRI client: what kubelet sends a container runtime to run and tear down a pod sandbox,
 * over the runtime's unix socket, with the `runtime.v1` subset of ./runtime-v1-proto. Each call has
 * a deadline (kubelet's default runtime request timeout is 2 minutes; TCG is slow, so we keep it).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { CRI_RUNTIME_V1_PROTO } from './runtime-v1-proto';

export interface PodSandboxMetadata { name: string; uid: string; namespace: string; attempt: number }
export interface PodSandboxSpec {
  metadata: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  cgroupParent?: string;
}
export type SandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: SandboxState;
  createdAt: number;
  network: { ip: string; additionalIps: { ip: string }[] } | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
export interface PodSandboxStatusResponse { status: PodSandboxStatus | null; info: Record<string, string> }
export interface PodSandbox { id: string; metadata: PodSandboxMetadata | null; state: SandboxState; createdAt: number; labels: Record<string, string> }
export interface VersionResponse { version: string; runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }

const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: true, arrays: true, objects: true };

function loadRuntimeService(): grpc.ServiceClientConstructor {
  const root = protobuf.parse(CRI_RUNTIME_V1_PROTO, { keepCase: false }).root;
  const def = protoLoader.fromJSON(root.toJSON(), LOADER_OPTIONS);
  return (grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } }).runtime.v1.RuntimeService;
}

/** The CRI error as the runtime sent it: gRPC code name and message (containerd's own text). */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: string,
    readonly details: string,
  ) {
    super(`CRI ${method}: ${code}: ${details}`);
  }
}

export class CriClient {
  private readonly client: grpc.Client;

  constructor(
    readonly socket: string,
    private readonly timeoutMs = 120_000,
  ) {
    const Service = loadRuntimeService();
    this.client = new Service(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call<Res>(method: string, req: object, timeoutMs = this.timeoutMs): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = (this.client as unknown as Record<string, (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method]!;
      fn.call(this.client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new CriError(method, grpc.status[err.code] ?? String(err.code), err.details || err.message));
        else resolve(res);
      });
    });
  }

  version(timeoutMs?: number): Promise<VersionResponse> {
    return this.call('Version', { version: 'v1' }, timeoutMs);
  }

  /** As kubelet: pod network namespace (POD mode), the pod's metadata, labels and annotations. */
  async runPodSandbox(spec: PodSandboxSpec): Promise<string> {
    const config = {
      metadata: spec.metadata,
      hostname: spec.hostname ?? spec.metadata.name,
      logDirectory: spec.logDirectory ?? '',
      labels: { 'io.kubernetes.pod.name': spec.metadata.name, 'io.kubernetes.pod.namespace': spec.metadata.namespace, 'io.kubernetes.pod.uid': spec.metadata.uid, ...spec.labels },
      annotations: spec.annotations ?? {},
      linux: { cgroupParent: spec.cgroupParent ?? '', securityContext: { namespaceOptions: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    };
    const r = await this.call<{ podSandboxId: string }>('RunPodSandbox', { config, runtimeHandler: '' });
    return r.podSandboxId;
  }

  podSandboxStatus(id: string, verbose = false): Promise<PodSandboxStatusResponse> {
    return this.call('PodSandboxStatus', { podSandboxId: id, verbose });
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', { podSandboxId: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', { podSandboxId: id });
  }

  async listPodSandbox(filter: { id?: string; labelSelector?: Record<string, string> } = {}): Promise<PodSandbox[]> {
    const r = await this.call<{ items: PodSandbox[] }>('ListPodSandbox', { filter });
    return r.items;
  }

  close(): void {
    this.client.close();
  }
}

/**
 * The sandbox's network namespace path, from the verbose status containerd gives (its `info` JSON
 * holds the OCI runtime spec of the pause container). Null when the runtime does not say.
 */
export function sandboxNetnsPath(st: PodSandboxStatusResponse): string | null {
  const raw = st.info['info'];
  if (!raw) return null;
  try {
    const info = JSON.parse(raw) as { runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } } };
    return info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path ?? null;
  } catch {
    return null;
  }
}
