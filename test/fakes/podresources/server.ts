// A fake kubelet PodResources v1 server on a unix socket. Tests feed it pods and their devices
// (for SR-IOV: resource name + VF PCI addresses) and choose how `Get` behaves, since real kubelets
// differ: enabled, disabled by the KubeletPodResourcesGet gate, or too old to have the method.
import * as grpc from '@grpc/grpc-js';
import { rmSync } from 'node:fs';
import {
  type AllocatableResourcesResponse, type ContainerDevices, type GetPodResourcesRequest,
  type GetPodResourcesResponse, type ListPodResourcesResponse, type PodResources, loadPodResourcesLister,
} from '../../../src/proto/podresources';

/** How the fake answers `Get`, matching the kubelets the agent can meet. */
export type GetMode =
  | 'enabled'
  /** Feature gate off: kubelet returns a plain error, which gRPC carries as code Unknown. */
  | 'gate-disabled'
  /** kubelet < 1.27: the method does not exist, so gRPC answers Unimplemented. */
  | 'absent';

export interface FakeDevice { resourceName: string; deviceIds: string[]; numaNode?: number }
export interface FakePod {
  namespace: string;
  name: string;
  containers: { name: string; devices: FakeDevice[] }[];
}

export interface FakePodResourcesOptions {
  socketPath: string;
  getMode?: GetMode;
  allocatable?: FakeDevice[];
}

const toDevices = (d: FakeDevice): ContainerDevices => ({
  resourceName: d.resourceName,
  deviceIds: [...d.deviceIds],
  topology: d.numaNode === undefined ? null : { nodes: [{ ID: d.numaNode }] },
});

const toPodResources = (p: FakePod): PodResources => ({
  name: p.name,
  namespace: p.namespace,
  containers: p.containers.map((c) => ({ name: c.name, devices: c.devices.map(toDevices), cpuIds: [], memory: [], dynamicResources: [] })),
});

export class FakePodResourcesServer {
  private server: grpc.Server | undefined;
  private readonly pods = new Map<string, FakePod>();
  private getMode: GetMode;
  private allocatable: FakeDevice[];
  /** Calls received per method, any outcome. */
  readonly calls = { List: 0, Get: 0, GetAllocatableResources: 0 };

  constructor(private readonly opts: FakePodResourcesOptions) {
    this.getMode = opts.getMode ?? 'enabled';
    this.allocatable = opts.allocatable ?? [];
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  setPod(pod: FakePod): void {
    this.pods.set(`${pod.namespace}/${pod.name}`, structuredClone(pod));
  }

  removePod(namespace: string, name: string): void {
    this.pods.delete(`${namespace}/${name}`);
  }

  setGetMode(mode: GetMode): void {
    this.getMode = mode;
  }

  setAllocatable(devices: FakeDevice[]): void {
    this.allocatable = structuredClone(devices);
  }

  async start(): Promise<void> {
    if (this.server) return;
    // Like kubelet: a stale socket file from an earlier run is removed before binding.
    rmSync(this.opts.socketPath, { force: true });
    const server = new grpc.Server();
    server.addService(loadPodResourcesLister().service, {
      List: (_call: grpc.ServerUnaryCall<unknown, ListPodResourcesResponse>, cb: grpc.sendUnaryData<ListPodResourcesResponse>) => {
        this.calls.List++;
        cb(null, { podResources: [...this.pods.values()].map(toPodResources) });
      },
      Get: (call: grpc.ServerUnaryCall<GetPodResourcesRequest, GetPodResourcesResponse>, cb: grpc.sendUnaryData<GetPodResourcesResponse>) => {
        this.calls.Get++;
        if (this.getMode === 'absent') {
          cb({ code: grpc.status.UNIMPLEMENTED, details: 'unknown method Get for service v1.PodResourcesLister' });
        } else if (this.getMode === 'gate-disabled') {
          cb({ code: grpc.status.UNKNOWN, details: 'PodResources API Get method disabled' });
        } else {
          const { podName, podNamespace } = call.request;
          const pod = this.pods.get(`${podNamespace}/${podName}`);
          if (!pod) cb({ code: grpc.status.UNKNOWN, details: `pod ${podName} in namespace ${podNamespace} not found` });
          else cb(null, { podResources: toPodResources(pod) });
        }
      },
      GetAllocatableResources: (_call: grpc.ServerUnaryCall<unknown, AllocatableResourcesResponse>, cb: grpc.sendUnaryData<AllocatableResourcesResponse>) => {
        this.calls.GetAllocatableResources++;
        cb(null, { devices: this.allocatable.map(toDevices), cpuIds: [], memory: [] });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${this.opts.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
    this.server = server;
  }

  /** Like a kubelet restart or crash: open calls fail, the socket goes away. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.forceShutdown();
    rmSync(this.opts.socketPath, { force: true });
  }
}
