/**
 * Kubernetes access for the daemons (node agent, CLI): kubeconfig loading, API clients, typed
 * access to our cluster-scoped custom resources, and reading apiserver failures. The CNI binary
 * never imports this module (client-node is heavy and the CNI holds no credentials).
 */
import * as k8s from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CniCode, UnderlayError } from '../errors';

export interface LoadKubeConfigOptions {
  /** An explicit kubeconfig file; wins over everything else. */
  kubeconfig?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Explicit file, else in-cluster service account, else $KUBECONFIG or ~/.kube/config. Unlike
 * client-node's loadFromDefault it never falls back to an unauthenticated localhost:8080.
 */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): k8s.KubeConfig {
  const env = opts.env ?? process.env;
  const kc = new k8s.KubeConfig();
  const fromFile = (path: string, source: string) => {
    if (!existsSync(path)) throw new UnderlayError(CniCode.Internal, `kubeconfig ${path} (from ${source}) does not exist`);
    try {
      kc.loadFromFile(path);
    } catch (err) {
      throw new UnderlayError(CniCode.Internal, `kubeconfig ${path} (from ${source}) cannot be loaded: ${(err as Error).message}`, undefined, { cause: err });
    }
  };
  if (opts.kubeconfig) fromFile(opts.kubeconfig, 'the --kubeconfig option');
  else if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) kc.loadFromCluster();
  else if (env.KUBECONFIG) fromFile(env.KUBECONFIG.split(':')[0]!, 'KUBECONFIG');
  else {
    const home = join(env.HOME ?? homedir(), '.kube', 'config');
    if (!existsSync(home)) {
      throw new UnderlayError(CniCode.Internal, 'no Kubernetes credentials: not running in a pod (KUBERNETES_SERVICE_HOST unset), no KUBECONFIG and no ~/.kube/config');
    }
    fromFile(home, '~/.kube/config');
  }
  if (!kc.getCurrentCluster()) {
    throw new UnderlayError(CniCode.Internal, `kubeconfig has no cluster for its current context "${kc.getCurrentContext()}"`);
  }
  return kc;
}

export interface KubeClients {
  config: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  /** Leases (the node policy's one-node-at-a-time lock). */
  coordination: k8s.CoordinationV1Api;
  custom: k8s.CustomObjectsApi;
  watch: k8s.Watch;
}

/**
 * Every API call of the daemons gives up after this long (client-node has no default timeout: a
 * hung apiserver or a black-holed connection would hold a CNI lookup, a release or a reconcile
 * pass forever). It fails as "unreachable", which the callers treat as "try again later". Watches
 * are long-lived and are bounded by the informer's own watchdog instead (src/kube/informer.ts).
 */
export const API_TIMEOUT_MS = 4_000;

export interface KubeClientOptions {
  /** Per-request timeout (ms). Default API_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** `p`, or a rejection once `ms` have passed. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the Kubernetes API within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * client-node's configuration as makeApiClient builds it, with an HTTP library that puts a
 * deadline on every request, body included. The caller stops waiting; the request itself is left
 * to end on the server's side (kube-apiserver ends every non-watch request after its own
 * --request-timeout, 60 s by default). Aborting it instead (an AbortSignal handed to fetch) costs
 * a fifth of the allocation throughput in bench/ipam on every request, for the rare hung one.
 */
function timedConfiguration(config: k8s.KubeConfig, timeoutMs: number): k8s.Configuration {
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new UnderlayError(CniCode.Internal, 'kubeconfig has no current cluster');
  const fetchLib = new k8s.IsomorphicFetchHttpLibrary();
  return k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: config },
    httpApi: {
      send(ctx) {
        const started = Date.now();
        const answered = within(fetchLib.send(ctx).toPromise(), timeoutMs).then((res) => {
          const body = res.body;
          const left = () => Math.max(1, timeoutMs - (Date.now() - started));
          res.body = { text: () => within(body.text(), left()), binary: () => within(body.binary(), left()) };
          return res;
        });
        return new k8s.Observable(answered);
      },
    },
  });
}

export function makeKubeClients(config: k8s.KubeConfig, opts: KubeClientOptions = {}): KubeClients {
  const conf = timedConfiguration(config, opts.timeoutMs ?? API_TIMEOUT_MS);
  return {
    config,
    core: new k8s.CoreV1Api(conf),
    apps: new k8s.AppsV1Api(conf),
    coordination: new k8s.CoordinationV1Api(conf),
    custom: new k8s.CustomObjectsApi(conf),
    watch: new k8s.Watch(config),
  };
}

// ---- apiserver failures ------------------------------------------------------------------------

export interface KubeFailure {
  /** HTTP status from the apiserver; undefined when it was not reached at all. */
  code?: number;
  /** The Status reason (AlreadyExists, Conflict, NotFound, Expired, Invalid, ...). */
  reason?: string;
  message: string;
  unreachable: boolean;
}

/** What went wrong in a client-node call, whichever of its error shapes it threw. */
export function kubeFailure(err: unknown): KubeFailure {
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown; cause?: unknown } | undefined;
  const httpCode = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  if (httpCode !== undefined) {
    let body: unknown = e?.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        // a non-JSON body (proxy error page): keep the text as the message
      }
    }
    const status = (typeof body === 'object' && body !== null ? body : {}) as { reason?: unknown; message?: unknown };
    return {
      code: httpCode,
      reason: typeof status.reason === 'string' ? status.reason : undefined,
      message: typeof status.message === 'string' ? status.message : typeof body === 'string' ? body : String(e?.message ?? 'HTTP ' + httpCode),
      unreachable: false,
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { message, unreachable: true };
}

export const isAlreadyExists = (err: unknown) => kubeFailure(err).reason === 'AlreadyExists';
export const isConflict = (err: unknown) => kubeFailure(err).reason === 'Conflict';
export const isNotFound = (err: unknown) => kubeFailure(err).code === 404;
export const isGone = (err: unknown) => kubeFailure(err).code === 410;
export const isUnreachable = (err: unknown) => kubeFailure(err).unreachable;

// ---- our custom resources ------------------------------------------------------------------------

export interface ClusterResource {
  group: string;
  version: string;
  plural: string;
  kind: string;
}

export const SRIOV_GROUP = 'sriov-underlay.io';
export const SRIOV_VERSION = 'v1alpha1';
/** One object per IP in use, named from network + IP so the apiserver's name uniqueness is the lock. */
export const IPCLAIMS: ClusterResource = { group: SRIOV_GROUP, version: SRIOV_VERSION, plural: 'ipclaims', kind: 'IPClaim' };
/** One object per node: the agent's published VF capacity. */
export const SRIOV_NODE_STATES: ClusterResource = { group: SRIOV_GROUP, version: SRIOV_VERSION, plural: 'sriovnodestates', kind: 'SriovNodeState' };

export const apiVersionOf = (r: ClusterResource) => `${r.group}/${r.version}`;
export const collectionPath = (r: ClusterResource) => `/apis/${r.group}/${r.version}/${r.plural}`;

export interface CustomObject {
  apiVersion?: string;
  kind?: string;
  metadata?: k8s.V1ObjectMeta;
}

export interface ObjectList<T> {
  items: T[];
  metadata?: { resourceVersion?: string; continue?: string; _continue?: string };
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  _continue?: string;
  resourceVersion?: string;
}

const MERGE_PATCH = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/** Typed access to one cluster-scoped custom resource; failures are client-node's errors. */
export class ClusterObjects<T extends CustomObject> {
  constructor(private readonly custom: k8s.CustomObjectsApi, readonly resource: ClusterResource) {}

  private get ref() {
    return { group: this.resource.group, version: this.resource.version, plural: this.resource.plural };
  }

  /** Fails with 409 AlreadyExists (see isAlreadyExists) when the name is taken. */
  async create(body: T): Promise<T> {
    const full = { ...body, apiVersion: apiVersionOf(this.resource), kind: this.resource.kind };
    return (await this.custom.createClusterCustomObject({ ...this.ref, body: full })) as T;
  }

  async get(name: string): Promise<T | undefined> {
    try {
      return (await this.custom.getClusterCustomObject({ ...this.ref, name })) as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(opts: ListOptions = {}): Promise<ObjectList<T>> {
    return (await this.custom.listClusterCustomObject({ ...this.ref, ...opts })) as ObjectList<T>;
  }

  /** Deletes only if uid / resourceVersion still match (409 Conflict otherwise). */
  async delete(name: string, preconditions?: { uid?: string; resourceVersion?: string }): Promise<T> {
    return (await this.custom.deleteClusterCustomObject({ ...this.ref, name, body: preconditions ? { preconditions } : {} })) as T;
  }

  /** JSON merge patch; include metadata.resourceVersion in the patch to make it conditional. */
  async mergePatch(name: string, patch: object): Promise<T> {
    return (await this.custom.patchClusterCustomObject({ ...this.ref, name, body: patch }, MERGE_PATCH)) as T;
  }

  async replace(name: string, body: T): Promise<T> {
    const full = { ...body, apiVersion: apiVersionOf(this.resource), kind: this.resource.kind };
    return (await this.custom.replaceClusterCustomObject({ ...this.ref, name, body: full })) as T;
  }
}
