/**
 * Pod → VF through kubelet's PodResources API v1, for SR-IOV as the primary CNI (the netconf has
 * no deviceID because Multus is not there to pass it). `Get` asks for one pod; where kubelet has it
 * disabled (feature gate, answered as Unknown) or lacks it (Unimplemented), `List` is used from then on.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../src/log';
import { loadPodResourcesLister, POD_RESOURCES_SOCKET, type GetPodResourcesResponse, type ListPodResourcesResponse, type PodResources } from '../../src/proto/podresources';

const PCI_RE = /^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/;

type Unary<Req, Res> = (req: Req, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;

export class PodResourcesClient {
  private client: grpc.Client & {
    Get: Unary<{ podName: string; podNamespace: string }, GetPodResourcesResponse>;
    List: Unary<Record<string, never>, ListPodResourcesResponse>;
  };
  private getWorks = true;

  constructor(
    private readonly log: Logger,
    socketPath = POD_RESOURCES_SOCKET,
    // Each call's bound; a lookup's PodResources call, its API calls (4 s) and the answer travel fit
    // in the agent's 8 s answer deadline.
    private readonly timeoutMs = 3_000,
  ) {
    const Ctor = loadPodResourcesLister();
    this.client = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure()) as unknown as typeof this.client;
    // Connect now, not at the first pod's lookup: on a loaded node the first call's connection set-up
    // alone overran a 2 s bound. Nothing waits on this; a kubelet not yet up is retried by grpc.
    this.client.getChannel().getConnectivityState(true);
  }

  close(): void {
    this.client.close();
  }

  /** The first VF (PCI address) kubelet allocated to the pod, of `resourceName` when given. */
  async deviceFor(namespace: string, name: string, resourceName?: string): Promise<string | undefined> {
    const pod = await this.pod(namespace, name);
    if (!pod) return undefined;
    for (const c of pod.containers) {
      for (const d of c.devices) {
        if (resourceName && d.resourceName !== resourceName) continue;
        const id = d.deviceIds.find((x) => PCI_RE.test(x));
        if (id) return id;
      }
    }
    return undefined;
  }

  /** Every pod with its devices (List), for the node policy's "which VFs are in use". */
  async list(): Promise<PodResources[]> {
    return (await this.call(this.client.List.bind(this.client), {})).podResources;
  }

  private async pod(namespace: string, name: string): Promise<PodResources | null> {
    if (this.getWorks) {
      try {
        const r = await this.call(this.client.Get.bind(this.client), { podName: name, podNamespace: namespace });
        return r.podResources;
      } catch (e) {
        const err = e as grpc.ServiceError;
        // kubelet answers a pod it does not know with a plain error (gRPC Unknown) too.
        if (err.code === grpc.status.UNKNOWN && /not found/i.test(err.details ?? '')) return null;
        // Gate off ("... Get method disabled", Unknown) or kubelet < 1.27 (Unimplemented).
        if (err.code !== grpc.status.UNIMPLEMENTED && !(err.code === grpc.status.UNKNOWN && /disabled/i.test(err.details ?? ''))) throw e;
        this.getWorks = false;
        this.log.info({ code: err.code, details: err.details }, 'PodResources Get unavailable on this kubelet; using List');
      }
    }
    const all = await this.call(this.client.List.bind(this.client), {});
    return all.podResources.find((p) => p.namespace === namespace && p.name === name) ?? null;
  }

  private call<Req, Res>(fn: Unary<Req, Res>, req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn(req, { deadline: Date.now() + this.timeoutMs }, (err, res) => (err ? reject(err) : resolve(res!)));
    });
  }
}
