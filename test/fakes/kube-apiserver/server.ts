// The fake kube-apiserver: node:http, JSON only, real status codes and watch semantics, plus a
// test-control surface (in-process methods and /_fake/* over HTTP) that real clients never touch.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { serveAdmin } from './admin';
import { type AdmissionStore, type Operation, admit, bindingErrors, policyErrors } from './admission';
import { ADMIN, type UserInfo, authenticate } from './auth';
import { serveDiscovery } from './discovery';
import { decideEviction, evictionBody, pdbStatus } from './disruption';
import { addWarnings, notFoundPath, parseJson, readJson, readRaw, send, sleep } from './http';
import { type Route, listObjects, serveWatch } from './listwatch';
import { PatchError, jsonPatch, mergePatch } from './patch';
import {
  STORED_OBJECT_MAX, type ResourceDef, apiVersionOf, decodeFailer, decodeMeta, defaultResources, metaErrors, nameErrors,
} from './resources';
import {
  ApiError, STALE_OBJECT, alreadyExists, badRequest, conflict, failure, invalid, notFound, success,
} from './status';
import { Store } from './store';
import { type ServingCert, makeServingCert } from './tls';
import { serveOpenApi } from './openapi';
import { BUILTIN, type CrdVersion, type Schema, loadCrds, schemaErrors, unknownFields } from './schemas';
import { columnsFor, toTable, wantsTable } from './table';
import { type FieldError, type KubeObject, deepEqual, isRecord } from './types';

export interface FakeKubeOptions {
  host?: string;
  /** 0 (default) picks a free port; the port is kept across stop()/start(). */
  port?: number;
  /** The admin's bearer token; null turns authentication off (no token needed). Default: random. */
  token?: string | null;
  /** More bearer tokens and the users they authenticate as (e.g. node-bound service accounts). */
  users?: Record<string, UserInfo>;
  /** Serve https with a CA generated at start (kubectl sends tokens only over https). Default: http. */
  tls?: boolean;
  /** Extra names or addresses the serving certificate is valid for (an advertised address). */
  tlsHosts?: string[];
  /** How many changes the server remembers; older watch/list revisions get 410. Default 1000. */
  historyLimit?: number;
  /** Interval of BOOKMARK events for watches that allow them. Default 1000 ms. */
  bookmarkIntervalMs?: number;
  /** The disruption controller's lag after a pod or PDB change (PDB status). Default 0 (next tick). */
  disruptionControllerDelayMs?: number;
  /** Simulated kubelet: terminating pods are removed this long after deletion. Default: never. */
  podFinalizeAfterMs?: number;
  /** Namespaces that exist at start. Default: default, kube-system, kube-public, kube-node-lease. */
  namespaces?: string[];
  /** Extra validation per resource plural (e.g. a CRD's schema), run after the built-in checks. */
  validators?: Record<string, (o: KubeObject) => FieldError[]>;
  requestLogLimit?: number;
}

export interface RequestLogEntry {
  at: string;
  method: string;
  path: string;
  verb: string;
  resource: string;
  namespace?: string;
  name?: string;
  status: number;
  durationMs: number;
}

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';
const WRITE_VERBS: ReadonlySet<string> = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

export interface Counters {
  /** Requests per verb, every outcome included. */
  requests: Partial<Record<Verb, number>>;
  /** Write requests (create/update/patch/delete/deletecollection) received, any outcome. */
  writeRequests: number;
  /** Write requests per resource plural and verb. */
  writesByResource: Record<string, Partial<Record<Verb, number>>>;
  /** Changes actually stored (each one bumped the resourceVersion). */
  commits: number;
}

export interface InjectedFailure {
  code: number;
  reason?: string;
  message?: string;
  verb?: Verb;
  resource?: string;
  /** How many matching requests fail; default 1. */
  count?: number;
}

/** Who asks (for admission) and where its Warning headers go; absent for the test controls. */
interface Requester {
  user: UserInfo;
  out: http.ServerResponse;
}

interface DeleteOptions {
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

/** etcd refuses a bigger request; kube-apiserver passes that on as a 500 without a reason. */
function storageSizeCheck(o: KubeObject): void {
  if (Buffer.byteLength(JSON.stringify(o)) > STORED_OBJECT_MAX) throw failure(500, '', 'etcdserver: request is too large');
}

const nowIso = (offsetS = 0) => new Date(Math.floor(Date.now() / 1000) * 1000 + offsetS * 1000).toISOString().replace('.000Z', 'Z');
const GEN_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

export class FakeKubeApiServer {
  readonly store: Store;
  readonly resources: ResourceDef[];
  /** The served CRD versions of deploy/10-crds.yaml: schemas and printer columns of the custom kinds. */
  readonly crds: CrdVersion[];
  readonly token: string | null;
  /** Token → user; null when authentication is off. */
  private readonly users: Map<string, UserInfo> | null;
  private readonly cert: ServingCert | undefined;
  private server: http.Server | undefined;
  private port: number;
  private readonly host: string;
  private readonly sockets = new Set<Socket>();
  private readonly watches = new Set<http.ServerResponse>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private latencyMs = 0;
  private disruptionDelayMs: number;
  private closed = false;
  private failures: (InjectedFailure & { left: number })[] = [];
  private log: RequestLogEntry[] = [];
  private counts: Counters = { requests: {}, writeRequests: 0, writesByResource: {}, commits: 0 };

  constructor(private readonly opts: FakeKubeOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.disruptionDelayMs = opts.disruptionControllerDelayMs ?? 0;
    this.port = opts.port ?? 0;
    this.token = opts.token === undefined ? randomBytes(16).toString('hex') : opts.token;
    this.users = this.token === null ? null : new Map([[this.token, ADMIN], ...Object.entries(opts.users ?? {})]);
    this.cert = opts.tls ? makeServingCert([this.host, ...(opts.tlsHosts ?? [])]) : undefined;
    this.store = new Store(opts.historyLimit ?? 1000);
    this.resources = defaultResources();
    this.crds = loadCrds();
    this.store.subscribe(() => this.counts.commits++);
    this.store.subscribe((c) => {
      if (c.res.plural === 'pods' || c.res.plural === 'poddisruptionbudgets' || c.res.plural === 'statefulsets') this.disruptionController(c.obj.metadata.namespace);
    });
    for (const ns of opts.namespaces ?? ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    }
  }

  get url(): string {
    return `${this.cert ? 'https' : 'http'}://${this.host}:${this.port}`;
  }

  /** The CA that signed the serving certificate (PEM), when serving https. */
  get caPem(): string | undefined {
    return this.cert?.caPem;
  }

  /** Another bearer token and its user (a node's service account token, say). */
  addUser(token: string, user: UserInfo): void {
    if (this.users === null) throw new Error('authentication is off (token: null): no users to add');
    this.users.set(token, user);
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  async start(): Promise<void> {
    if (this.server?.listening) return;
    this.closed = false;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    const server = this.cert
      ? https.createServer({ cert: this.cert.certPem, key: this.cert.keyPem }, handler)
      : http.createServer(handler);
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening and cuts every connection, watches included, like a crashed apiserver. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const w of this.watches) w.destroy();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** stop() plus cancelling pending timers: for afterAll. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.stop();
  }

  // ---- test controls -------------------------------------------------------------------------

  /** Forget history up to now: any watch or paged list from an older revision gets 410. */
  compact(): number {
    return this.store.compact();
  }

  setHistoryLimit(n: number): void {
    this.store.setHistoryLimit(n);
  }

  get latency(): number {
    return this.latencyMs;
  }

  /** True after close(): a pending /_fake/outage must not bring the server back. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** How long the disruption controller lags behind pod and PDB changes. */
  setDisruptionControllerDelay(ms: number): void {
    this.disruptionDelayMs = ms;
  }

  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  failNext(f: InjectedFailure): void {
    this.failures.push({ ...f, left: f.count ?? 1 });
  }

  counters(): Counters {
    return structuredClone(this.counts);
  }

  resetCounters(): void {
    this.counts = { requests: {}, writeRequests: 0, writesByResource: {}, commits: 0 };
  }

  requests(): RequestLogEntry[] {
    return [...this.log];
  }

  clearRequests(): void {
    this.log = [];
  }

  /** The OpenAPI schema of a kind: its CRD's for custom resources, schemas.ts's for built-in ones. */
  schemaOf(r: ResourceDef): Schema {
    if (r.custom) {
      const crd = this.crds.find((c) => c.group === r.group && c.version === r.version && c.plural === r.plural);
      if (!crd) throw new Error(`fake apiserver: no CRD in deploy/10-crds.yaml for ${r.plural}.${r.group}/${r.version}`);
      return crd.schema;
    }
    return BUILTIN[`${apiVersionOf(r)}/${r.kind}`] ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  }

  resource(plural: string, group?: string): ResourceDef {
    const r = this.resources.find((x) => x.plural === plural && (group === undefined || x.group === group));
    if (!r) throw new Error(`fake apiserver serves no resource "${plural}"`);
    return r;
  }

  /** Reads an object straight from storage (no request is logged or counted). */
  get(plural: string, ns: string | undefined, name: string): KubeObject | undefined {
    return this.store.get(this.resource(plural), ns, name);
  }

  /**
   * Creates or replaces an object as cluster components would (scheduler, kubelet status
   * updates): status is kept, validation still applies, watchers see ADDED/MODIFIED.
   */
  put(input: KubeObject): KubeObject {
    const res = this.resources.find((r) => apiVersionOf(r) === input.apiVersion && r.kind === input.kind);
    if (!res) throw new Error(`fake apiserver serves no ${input.apiVersion} ${input.kind}`);
    const obj = structuredClone(input);
    const errors = this.validate(res, obj, undefined);
    if (errors.length) throw invalid(res.kind, res.group, obj.metadata.name ?? '', errors);
    const existing = this.store.get(res, obj.metadata.namespace, obj.metadata.name ?? '');
    if (existing) {
      obj.metadata = { ...obj.metadata, uid: existing.metadata.uid, creationTimestamp: existing.metadata.creationTimestamp };
      return this.store.commit(res, 'MODIFIED', obj);
    }
    obj.metadata.uid ??= randomUUID();
    obj.metadata.creationTimestamp ??= nowIso();
    if (res.generation) obj.metadata.generation ??= 1;
    if (res.defaults && (res.plural === 'namespaces' || res.plural === 'statefulsets')) res.defaults(obj);
    return this.store.commit(res, 'ADDED', obj);
  }

  /** Removes an object as a controller would (no request is logged); watchers see DELETED. */
  remove(plural: string, ns: string | undefined, name: string): boolean {
    const res = this.resource(plural);
    const o = this.store.get(res, ns, name);
    if (!o) return false;
    this.store.commit(res, 'DELETED', o);
    return true;
  }

  /** Ends every open watch cleanly, as the apiserver does when a watch's timeout expires. */
  closeWatches(): number {
    const n = this.watches.size;
    for (const w of this.watches) w.end();
    return n;
  }

  /** The kubelet's part of graceful deletion: remove a terminating pod now. */
  finalizePod(ns: string, name: string): boolean {
    const res = this.resource('pods');
    const pod = this.store.get(res, ns, name);
    if (!pod?.metadata.deletionTimestamp) return false;
    pod.metadata.deletionGracePeriodSeconds = 0;
    if (pod.metadata.finalizers?.length) {
      this.store.commit(res, 'MODIFIED', pod);
      return false;
    }
    this.store.commit(res, 'DELETED', pod);
    return true;
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://fake');
    const entry: RequestLogEntry = {
      at: new Date().toISOString(), method: req.method ?? 'GET', path: url.pathname + url.search,
      verb: '', resource: '', status: 0, durationMs: 0,
    };
    res.on('finish', () => {
      entry.status = res.statusCode;
      entry.durationMs = performance.now() - started;
    });
    if (!url.pathname.startsWith('/_fake/')) {
      this.log.push(entry);
      if (this.log.length > (this.opts.requestLogLimit ?? 10_000)) this.log.shift();
    }
    try {
      if (url.pathname.startsWith('/_fake/')) return await serveAdmin(this, req, res, url);
      if (this.latencyMs > 0) await sleep(this.latencyMs);
      const user = authenticate(req, this.users);
      if (url.pathname === '/openapi/v3' || url.pathname.startsWith('/openapi/v3/')) {
        return serveOpenApi(this.resources.filter((r) => !r.storage || r.group), (r) => this.schemaOf(r), url.pathname, res);
      }
      if (serveDiscovery(this.resources, `${this.host}:${this.port}`, url.pathname, res)) return;
      const route = this.route(url.pathname);
      const verb = this.verbOf(req.method ?? 'GET', route, url);
      Object.assign(entry, { verb, resource: route.res.plural + (route.sub ? `/${route.sub}` : ''), namespace: route.ns, name: route.name });
      this.count(verb, route.res.plural);
      this.injectedFailure(verb, route.res.plural);
      await this.dispatch(verb, route, req, res, url, user);
    } catch (err) {
      const status = err instanceof ApiError ? err.status
        : failure(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`).status;
      if (!res.headersSent) send(res, status.code, status);
      else res.end();
    }
  }

  private count(verb: Verb, plural: string): void {
    this.counts.requests[verb] = (this.counts.requests[verb] ?? 0) + 1;
    if (!WRITE_VERBS.has(verb)) return;
    this.counts.writeRequests++;
    const r = (this.counts.writesByResource[plural] ??= {});
    r[verb] = (r[verb] ?? 0) + 1;
  }

  private injectedFailure(verb: Verb, plural: string): void {
    const f = this.failures.find((x) => (!x.verb || x.verb === verb) && (!x.resource || x.resource === plural));
    if (!f) return;
    if (--f.left <= 0) this.failures.splice(this.failures.indexOf(f), 1);
    const reason = f.reason ?? (http.STATUS_CODES[f.code] ?? 'Unknown').replace(/ /g, '');
    throw failure(f.code, reason, f.message ?? `injected failure (${f.code})`);
  }

  private route(path: string): Route {
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string | undefined;
    let rest: string[];
    if (seg[0] === 'api') [group, version, rest] = ['', seg[1], seg.slice(2)];
    else if (seg[0] === 'apis') [group, version, rest] = [seg[1] ?? '', seg[2], seg.slice(3)];
    else throw notFoundPath();
    let ns: string | undefined;
    let plural: string | undefined;
    let name: string | undefined;
    let sub: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && ['status', 'finalize'].includes(rest[2]!))) {
      [ns, plural, name, sub] = [rest[1], rest[2], rest[3], rest[4]];
      if (rest.length > 5) throw notFoundPath();
    } else {
      [plural, name, sub] = [rest[0], rest[1], rest[2]];
      if (rest.length > 3) throw notFoundPath();
    }
    const res = this.resources.find((r) => r.group === group && r.version === version && r.plural === plural);
    if (!res || (ns !== undefined && !res.namespaced)) throw notFoundPath();
    if (sub !== undefined && !(sub === 'status' && res.statusSubresource) && !res.createSubresources?.includes(sub)) throw notFoundPath();
    return { res, ns, name, sub };
  }

  private verbOf(method: string, r: Route, url: URL): Verb {
    const watch = ['true', '1'].includes(url.searchParams.get('watch') ?? '');
    if (r.name === undefined) {
      if (method === 'GET') return watch ? 'watch' : 'list';
      if (method === 'POST' && (r.ns !== undefined || !r.res.namespaced)) return 'create';
      if (method === 'DELETE') return 'deletecollection';
    } else if (r.sub !== undefined && r.res.createSubresources?.includes(r.sub)) {
      if (method === 'POST') return 'create';
    } else {
      if (method === 'GET') return 'get';
      if (method === 'PUT') return 'update';
      if (method === 'PATCH') return 'patch';
      if (method === 'DELETE' && r.sub === undefined) return 'delete';
    }
    throw failure(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
  }

  private async dispatch(verb: Verb, r: Route, req: http.IncomingMessage, res: http.ServerResponse, url: URL, user: UserInfo): Promise<void> {
    const who: Requester = { user, out: res };
    const dryRun = url.searchParams.get('dryRun') === 'All';
    const crd = this.crds.find((c) => r.res.custom && c.group === r.res.group && c.version === r.res.version && c.plural === r.res.plural);
    const table = wantsTable(req)
      ? (objs: KubeObject[], meta: Record<string, unknown>) => toTable(columnsFor(r.res, crd?.columns), objs, meta, url.searchParams.get('includeObject'))
      : undefined;
    switch (verb) {
      case 'get': {
        const o = this.store.get(r.res, r.ns, r.name!);
        if (!o) throw notFound(r.res.plural, r.res.group, r.name!);
        return send(res, 200, table ? table([o], { resourceVersion: o.metadata.resourceVersion }) : o);
      }
      case 'list': {
        const list = listObjects(this.store, r, url);
        return send(res, 200, table ? table(list.items as KubeObject[], list.metadata as Record<string, unknown>) : list);
      }
      case 'watch': return serveWatch({ store: this.store, open: this.watches, bookmarkIntervalMs: this.opts.bookmarkIntervalMs ?? 1000 }, r, url, res, table && ((o) => table([o], {})));
      case 'create':
        if (r.sub === 'eviction') return send(res, 201, this.evict(r, await readJson(req), dryRun, who));
        return send(res, 201, this.create(r, this.fieldValidation(r.res, await readJson(req), url, res), dryRun, who));
      case 'update': {
        const body = this.decodeBody(r.res, this.fieldValidation(r.res, await readJson(req), url, res), r.ns);
        if (body.metadata.name === undefined) body.metadata.name = r.name;
        if (body.metadata.name !== r.name) {
          throw badRequest(`the name of the object (${body.metadata.name}) does not match the name on the URL (${r.name})`);
        }
        return send(res, 200, this.update(r, body, dryRun, who));
      }
      case 'patch': return send(res, 200, this.patch(r, req.headers['content-type'] ?? '', await readJson(req), dryRun, (o) => this.fieldValidation(r.res, o, url, res), who));
      case 'delete': {
        const o = await this.deleteOptions(req, url);
        const [code, body] = this.deleteOne(r.res, r.ns, r.name!, o, who);
        return send(res, code, body);
      }
      case 'deletecollection': {
        const o = await this.deleteOptions(req, url);
        if (o.preconditions) throw badRequest('preconditions are not allowed on a collection delete');
        const list = listObjects(this.store, r, url);
        const items = (list.items as KubeObject[]).map((i) => this.deleteOne(r.res, i.metadata.namespace, i.metadata.name!, o, who)[1]);
        return send(res, 200, { ...list, items });
      }
    }
  }

  // ---- decoding and validation ---------------------------------------------------------------

  private decodeBody(res: ResourceDef, body: unknown, ns: string | undefined): KubeObject {
    const apiVersion = apiVersionOf(res);
    if (!isRecord(body)) throw badRequest(`${res.kind} in version "${apiVersion}" cannot be handled as a ${res.kind}: the body is not a JSON object`);
    if (res.custom && (!body.kind || !body.apiVersion)) throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body).slice(0, 200)}'`);
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersion) {
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersion})`);
    }
    if (body.kind !== undefined && body.kind !== res.kind) {
      throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${res.kind})`);
    }
    if (body.metadata !== undefined && !isRecord(body.metadata)) decodeFailer(res.kind, apiVersion)(`${res.kind}.metadata`, 'v1.ObjectMeta');
    const { apiVersion: _a, kind: _k, metadata, ...rest } = structuredClone(body);
    const obj = { apiVersion, kind: res.kind, metadata: metadata ?? {}, ...rest } as KubeObject;
    decodeMeta(obj, decodeFailer(res.kind, apiVersion));
    res.decode?.(obj, decodeFailer(res.kind, apiVersion));
    if (res.namespaced) {
      if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== '' && obj.metadata.namespace !== ns) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      obj.metadata.namespace = ns;
    } else delete obj.metadata.namespace;
    return obj;
  }

  /**
   * The fieldValidation query parameter: fields the kind's schema does not declare are a 400 under
   * Strict (kubectl's default), a Warning header under Warn (the server's default), nothing under
   * Ignore. (The fake keeps such fields where the real server drops or prunes them; see fakes.md.)
   */
  private fieldValidation(res: ResourceDef, body: unknown, url: URL, out: http.ServerResponse): unknown {
    const mode = url.searchParams.get('fieldValidation') ?? 'Warn';
    if (!['Strict', 'Warn', 'Ignore'].includes(mode)) {
      throw badRequest(`fieldValidation parameter unsupported: ${mode}, valid values are Ignore, Warn, Strict`);
    }
    if (mode === 'Ignore' || !isRecord(body)) return body;
    const unknown = unknownFields(this.schemaOf(res), body);
    if (!unknown.length) return body;
    const texts = unknown.map((f) => `unknown field "${f}"`);
    if (mode === 'Strict') {
      const apiVersion = apiVersionOf(res);
      throw badRequest(`${res.kind} in version "${apiVersion}" cannot be handled as a ${res.kind}: strict decoding error: ${texts.join(', ')}`);
    }
    addWarnings(out, texts);
    return body;
  }

  private validate(res: ResourceDef, obj: KubeObject, old: KubeObject | undefined): FieldError[] {
    const { apiVersion: _a, kind: _k, metadata: _m, ...content } = obj;
    return [
      ...metaErrors(obj, res.nameRule),
      // A custom resource's structural schema (deploy/10-crds.yaml), as the CRD handler checks it.
      ...(res.custom ? schemaErrors(this.schemaOf(res), content) : []),
      ...policyErrors(obj),
      ...bindingErrors(obj),
      ...(res.validate?.(obj, old) ?? []),
      ...(this.opts.validators?.[res.plural]?.(obj) ?? []),
    ];
  }

  /** Validating admission (ValidatingAdmissionPolicies), after the object's own validation, as in kube. */
  private admission(who: Requester, operation: Operation, res: ResourceDef, object: KubeObject | null, oldObject: KubeObject | null, dryRun: boolean, subResource?: string): void {
    const o = (object ?? oldObject)!;
    const warnings = admit(this.admissionStore, {
      operation, res, subResource, name: o.metadata.name ?? '', namespace: o.metadata.namespace, object, oldObject, user: who.user, dryRun,
    });
    addWarnings(who.out, warnings);
  }

  private readonly admissionStore: AdmissionStore = {
    list: (plural) => this.store.list(this.resource(plural)),
    resourceOf: (apiVersion, kind) => this.resources.find((r) => !r.storage && apiVersionOf(r) === apiVersion && r.kind === kind),
    namespace: (name) => this.store.get(this.resource('namespaces'), undefined, name),
  };

  private requireNamespace(ns: string | undefined): void {
    if (ns !== undefined && !this.store.get(this.resource('namespaces'), undefined, ns)) {
      throw notFound('namespaces', '', ns);
    }
  }

  // ---- verbs ---------------------------------------------------------------------------------

  private create(r: Route, body: unknown, dryRun: boolean, who: Requester): KubeObject {
    const obj = this.decodeBody(r.res, body, r.ns);
    const m = obj.metadata;
    if (m.resourceVersion) throw failure(500, 'InternalError', 'Internal error occurred: resourceVersion should not be set on objects to be created');
    if (!m.name && m.generateName) {
      const errs = nameErrors(`${m.generateName}x`, r.res.nameRule, 'metadata.generateName');
      if (errs.length) throw invalid(r.res.kind, r.res.group, m.generateName, errs);
      m.name = m.generateName + Array.from(randomBytes(5), (b) => GEN_CHARS[b % GEN_CHARS.length]).join('');
    }
    for (const k of ['uid', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'creationTimestamp'] as const) delete m[k];
    if (r.res.plural === 'pods') obj.status = { phase: 'Pending' };
    if (r.res.plural === 'pods' && isRecord(obj.spec)) r.res.defaults?.(obj);
    if (r.res.plural === 'namespaces' || r.res.plural === 'statefulsets') r.res.defaults?.(obj);
    const errors = this.validate(r.res, obj, undefined);
    if (errors.length) throw invalid(r.res.kind, r.res.group, m.name ?? m.generateName ?? '', errors);
    this.requireNamespace(r.ns);
    if (this.store.get(r.res, r.ns, m.name!)) throw alreadyExists(r.res.plural, r.res.group, m.name!);
    m.uid = randomUUID();
    m.creationTimestamp = nowIso();
    if (r.res.custom || r.res.generation) m.generation = 1;
    this.admission(who, 'CREATE', r.res, obj, null, dryRun);
    storageSizeCheck(obj);
    if (dryRun) return obj;
    return this.store.commit(r.res, 'ADDED', obj);
  }

  /** Shared by PUT and PATCH: preconditions, preserved fields, validation, no-op detection. */
  private update(r: Route, body: KubeObject, dryRun: boolean, who: Requester, existingIn?: KubeObject): KubeObject {
    const existing = existingIn ?? this.store.get(r.res, r.ns, r.name!);
    if (!existing) throw notFound(r.res.plural, r.res.group, r.name!);
    const want = body.metadata;
    if (want.resourceVersion && want.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(r.res.plural, r.res.group, r.name!, STALE_OBJECT);
    }
    if (want.uid && want.uid !== existing.metadata.uid) {
      throw conflict(r.res.plural, r.res.group, r.name!, `Precondition failed: UID in precondition: ${want.uid}, UID in object meta: ${existing.metadata.uid}`);
    }
    let next: KubeObject;
    if (r.sub === 'status') {
      next = { ...existing, status: body.status };
    } else {
      next = structuredClone(body);
      const keep = ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'] as const;
      for (const k of keep) {
        if (existing.metadata[k] === undefined) delete next.metadata[k];
        else next.metadata[k] = existing.metadata[k] as never;
      }
      if (r.res.statusSubresource) next.status = existing.status;
      if ((r.res.plural === 'pods' && isRecord(next.spec)) || r.res.plural === 'statefulsets') r.res.defaults?.(next);
      if (r.res.custom || r.res.generation) {
        const strip = (o: KubeObject) => ({ ...o, metadata: undefined, status: undefined });
        if (!deepEqual(strip(existing), strip(next))) next.metadata.generation = (existing.metadata.generation ?? 0) + 1;
      }
    }
    next.metadata.resourceVersion = existing.metadata.resourceVersion;
    const errors = this.validate(r.res, next, existing);
    if (errors.length) throw invalid(r.res.kind, r.res.group, r.name!, errors);
    // Admission runs before storage sees that nothing changed, as in kube: a no-op is admitted too.
    this.admission(who, 'UPDATE', r.res, next, existing, dryRun, r.sub);
    // Finalizers gone on an object being deleted (and no grace period left): it goes away now.
    const m = next.metadata;
    if (m.deletionTimestamp && !m.finalizers?.length && !(m.deletionGracePeriodSeconds ?? 0)) {
      return dryRun ? next : this.store.commit(r.res, 'DELETED', next);
    }
    if (deepEqual(next, existing) || dryRun) return next;
    storageSizeCheck(next);
    return this.store.commit(r.res, 'MODIFIED', next);
  }

  private patch(r: Route, contentType: string, patchBody: unknown, dryRun: boolean, check: (o: unknown) => unknown, who: Requester): KubeObject {
    const type = contentType.split(';')[0]!.trim();
    const existing = this.store.get(r.res, r.ns, r.name!);
    let patched: unknown;
    const apply = (fn: () => unknown) => {
      try {
        return fn();
      } catch (e) {
        if (e instanceof PatchError) throw failure(422, 'Invalid', e.message);
        throw e;
      }
    };
    if (type === 'application/merge-patch+json' || (type === 'application/strategic-merge-patch+json' && !r.res.custom)) {
      if (!isRecord(patchBody)) throw badRequest('a merge patch must be a JSON object');
      if (!existing) throw notFound(r.res.plural, r.res.group, r.name!);
      patched = mergePatch(existing, patchBody);
    } else if (type === 'application/json-patch+json') {
      if (!Array.isArray(patchBody)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
      if (!existing) throw notFound(r.res.plural, r.res.group, r.name!);
      patched = apply(() => jsonPatch(existing, patchBody));
    } else {
      throw failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json${r.res.custom ? '' : ', application/strategic-merge-patch+json'} (server-side apply is not implemented by the fake)`);
    }
    const body = this.decodeBody(r.res, check(patched), r.ns);
    if (body.metadata.name !== r.name) throw badRequest(`the name of the object (${body.metadata.name}) does not match the name on the URL (${r.name})`);
    return this.update(r, body, dryRun, who, existing);
  }

  private async deleteOptions(req: http.IncomingMessage, url: URL): Promise<DeleteOptions> {
    const raw = await readRaw(req);
    const body: unknown = raw.length ? parseJson(raw) : {};
    if (!isRecord(body)) throw badRequest('DeleteOptions must be a JSON object');
    const o: DeleteOptions = {};
    const q = url.searchParams.get('gracePeriodSeconds');
    const grace = q !== null ? Number(q) : body.gracePeriodSeconds;
    if (grace !== undefined && grace !== null) {
      if (typeof grace !== 'number' || !Number.isInteger(grace)) throw badRequest('gracePeriodSeconds must be an integer');
      o.gracePeriodSeconds = Math.max(0, grace);
    }
    if (isRecord(body.preconditions)) {
      o.preconditions = {};
      if (typeof body.preconditions.uid === 'string') o.preconditions.uid = body.preconditions.uid;
      if (typeof body.preconditions.resourceVersion === 'string') o.preconditions.resourceVersion = body.preconditions.resourceVersion;
    }
    const dry = url.searchParams.get('dryRun') ?? (Array.isArray(body.dryRun) ? body.dryRun[0] : undefined);
    o.dryRun = dry === 'All';
    return o;
  }

  private deleteOne(res: ResourceDef, ns: string | undefined, name: string, o: DeleteOptions, who: Requester): [number, unknown] {
    const existing = this.store.get(res, ns, name);
    if (!existing) throw notFound(res.plural, res.group, name);
    this.admission(who, 'DELETE', res, null, existing, o.dryRun ?? false);
    const p = o.preconditions;
    if (p?.uid && p.uid !== existing.metadata.uid) {
      throw conflict(res.plural, res.group, name, `Precondition failed: UID in precondition: ${p.uid}, UID in object meta: ${existing.metadata.uid}`);
    }
    if (p?.resourceVersion && p.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(res.plural, res.group, name, `Precondition failed: ResourceVersion in precondition: ${p.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion}`);
    }
    const m = existing.metadata;
    if (res.plural === 'pods') {
      const spec = isRecord(existing.spec) ? existing.spec : {};
      const phase = isRecord(existing.status) ? existing.status.phase : undefined;
      const grace = o.gracePeriodSeconds ?? m.deletionGracePeriodSeconds ?? (spec.terminationGracePeriodSeconds as number | undefined) ?? 30;
      // Unscheduled or finished pods have no kubelet to wait for: they go at once, as in kube.
      const graceful = grace > 0 && typeof spec.nodeName === 'string' && spec.nodeName !== '' && phase !== 'Succeeded' && phase !== 'Failed';
      if (graceful) {
        if (m.deletionTimestamp && (m.deletionGracePeriodSeconds ?? 0) <= grace) return [200, existing];
        m.deletionTimestamp = nowIso(grace);
        m.deletionGracePeriodSeconds = grace;
        if (o.dryRun) return [200, existing];
        const out = this.store.commit(res, 'MODIFIED', existing);
        this.scheduleFinalize(ns!, name, out.metadata.uid!);
        return [200, out];
      }
      m.deletionGracePeriodSeconds = 0;
    }
    if (m.finalizers?.length) {
      if (m.deletionTimestamp) return [200, existing];
      m.deletionTimestamp = nowIso();
      m.deletionGracePeriodSeconds = 0;
      return [200, o.dryRun ? existing : this.store.commit(res, 'MODIFIED', existing)];
    }
    if (o.dryRun) return [200, res.returnDeletedObject ? existing : success(res.plural, res.group, name, m.uid)];
    if (res.plural === 'namespaces') this.emptyNamespace(name);
    if (res.plural === 'namespaces') existing.status = { phase: 'Terminating' };
    const out = this.store.commit(res, 'DELETED', existing);
    return [200, res.returnDeletedObject ? out : success(res.plural, res.group, name, m.uid)];
  }

  /** The namespace controller's job, done at once: everything inside goes with the namespace. */
  private emptyNamespace(ns: string): void {
    for (const res of this.resources.filter((r) => r.namespaced && !r.storage)) {
      for (const o of this.store.list(res)) if (o.metadata.namespace === ns) this.store.commit(res, 'DELETED', o);
    }
  }

  /**
   * POST pods/<name>/eviction: the PDB check on the PDB's stored status, then a delete with the
   * eviction's DeleteOptions (disruption.ts). Answers 201 with a Success Status, as kube does.
   */
  private evict(r: Route, body: unknown, dryRun: boolean, who: Requester): unknown {
    const opts = evictionBody(body, r.name!);
    const pods = this.resource('pods');
    const pod = this.store.get(pods, r.ns, r.name!);
    if (!pod) throw notFound('pods', '', r.name!);
    const pdbRes = this.resource('poddisruptionbudgets');
    const decision = decideEviction(pod, this.store.list(pdbRes).filter((p) => p.metadata.namespace === r.ns));
    if (decision.kind === 'refuse') throw decision.error;
    if (decision.pdbStatus && !dryRun) this.store.commit(pdbRes, 'MODIFIED', { ...decision.pdbStatus.pdb, status: decision.pdbStatus.status });
    this.deleteOne(pods, r.ns, r.name!, { ...opts, dryRun }, who);
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 };
  }

  private pendingDisruption = new Set<string>();

  /** kube-controller-manager's disruption controller: PDB status from the pods, a tick after a change. */
  private disruptionController(ns: string | undefined): void {
    if (ns === undefined || this.pendingDisruption.has(ns)) return;
    this.pendingDisruption.add(ns);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.pendingDisruption.delete(ns);
      if (this.closed) return;
      const inNs = (o: KubeObject) => o.metadata.namespace === ns;
      const world = { pods: this.store.list(this.resource('pods')).filter(inNs), statefulSets: this.store.list(this.resource('statefulsets')).filter(inNs) };
      const pdbRes = this.resource('poddisruptionbudgets');
      for (const pdb of this.store.list(pdbRes).filter(inNs)) {
        const status = pdbStatus(pdb, world);
        const same = (a: unknown, b: unknown) => deepEqual(JSON.parse(JSON.stringify(a ?? {})), JSON.parse(JSON.stringify(b ?? {})));
        if (!same(pdb.status, status)) this.store.commit(pdbRes, 'MODIFIED', { ...pdb, status });
      }
    }, this.disruptionDelayMs);
    this.timers.add(t);
  }

  private scheduleFinalize(ns: string, name: string, uid: string): void {
    const after = this.opts.podFinalizeAfterMs;
    if (after === undefined) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.get('pods', ns, name)?.metadata.uid === uid) this.finalizePod(ns, name);
    }, after);
    this.timers.add(t);
  }

}
