// List and watch: the read paths that depend on revisions and the retained history.
import type http from 'node:http';
import { decodeContinue, encodeContinue, keyOf, parseRv, tooLarge } from './http';
import { type ResourceDef, apiVersionOf } from './resources';
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector } from './selectors';
import { expired, invalid } from './status';
import type { Change, Store } from './store';
import type { KubeObject, WatchEventType } from './types';

export interface Route {
  res: ResourceDef;
  ns?: string;
  name?: string;
  sub?: string;
}

export function matcher(r: Route, url: URL): (o: KubeObject) => boolean {
  const labels = parseLabelSelector(url.searchParams.get('labelSelector'));
  const supported = ['metadata.name', ...(r.res.namespaced ? ['metadata.namespace'] : []), ...Object.keys(r.res.fields)];
  const fields = parseFieldSelector(url.searchParams.get('fieldSelector'), supported);
  return (o) => {
    if (r.ns !== undefined && o.metadata.namespace !== r.ns) return false;
    if (!matchLabels(labels, o.metadata.labels)) return false;
    if (fields.length === 0) return true;
    const values: Record<string, string> = { 'metadata.name': o.metadata.name ?? '', 'metadata.namespace': o.metadata.namespace ?? '' };
    for (const [f, get] of Object.entries(r.res.fields)) values[f] = get(o) ?? '';
    return matchFields(fields, values);
  };
}

/** A list response: selectors, paging from one snapshot, resourceVersion semantics. */
export function listObjects(store: Store, r: Route, url: URL): Record<string, unknown> {
  const match = matcher(r, url);
  const rvParam = url.searchParams.get('resourceVersion') ?? '';
  const rvMatch = url.searchParams.get('resourceVersionMatch') ?? '';
  const limit = Number(url.searchParams.get('limit') ?? '0') || 0;
  const cont = url.searchParams.get('continue') ?? '';
  let snapshotRv = store.rv;
  let items: KubeObject[] | undefined;
  let startAfter = '';
  if (cont) {
    const token = decodeContinue(cont);
    snapshotRv = token.rv;
    startAfter = token.start;
    items = store.listAt(r.res, snapshotRv);
    if (!items) throw expired('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
  } else if (rvParam && rvParam !== '0') {
    const want = parseRv(rvParam);
    if (rvMatch === 'Exact') {
      snapshotRv = want;
      items = want <= store.rv ? store.listAt(r.res, want) : undefined;
      if (want > store.rv) throw tooLarge(want, store.rv);
      if (!items) throw expired(`The resourceVersion for the provided list is too old.`);
    } else if (want > store.rv) throw tooLarge(want, store.rv);
  } else if (rvMatch) {
    throw invalid('ListOptions', '', '', [{ reason: 'FieldValueForbidden', field: 'resourceVersionMatch', message: 'Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided' }]);
  }
  items = (items ?? store.list(r.res)).filter(match);
  const meta: Record<string, unknown> = { resourceVersion: String(snapshotRv) };
  if (startAfter) items = items.filter((o) => keyOf(o) > startAfter);
  if (limit > 0 && items.length > limit) {
    const remaining = items.length - limit;
    items = items.slice(0, limit);
    meta.continue = encodeContinue(snapshotRv, keyOf(items[items.length - 1]!));
    meta.remainingItemCount = remaining;
  }
  return {
    apiVersion: apiVersionOf(r.res),
    kind: `${r.res.kind}List`,
    metadata: meta,
    // Built-in lists carry kind/apiVersion only on the list; custom resources keep them per item.
    items: r.res.custom ? items : items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
  };
}

export interface WatchContext {
  store: Store;
  /** Open watch responses, so the server can cut or end them. */
  open: Set<http.ServerResponse>;
  bookmarkIntervalMs: number;
}

/** Streams watch events as JSON lines until the client leaves, the timeout passes or the server stops. */
export function serveWatch(ctx: WatchContext, r: Route, url: URL, res: http.ServerResponse, asTable?: (o: KubeObject) => unknown): void {
  const { store } = ctx;
  const match = matcher(r, url);
  const rvParam = url.searchParams.get('resourceVersion') ?? '';
  const timeoutS = Number(url.searchParams.get('timeoutSeconds') ?? '0') || 0;
  const bookmarks = url.searchParams.get('allowWatchBookmarks') === 'true';
  const from = rvParam === '' || rvParam === '0' ? undefined : parseRv(rvParam);
  const missed = from === undefined ? [] : store.changesSince(from);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders(); // clients wait for the headers before they treat the watch as open
  // A Table watch (kubectl get -w) gets each object as a one-row Table; BOOKMARK and ERROR stay as they are.
  const write = (type: WatchEventType, object: unknown) => {
    const shown = asTable && type !== 'BOOKMARK' && type !== 'ERROR' ? asTable(object as KubeObject) : object;
    res.write(`${JSON.stringify({ type, object: shown })}\n`);
  };
  if (missed === undefined) {
    // What the real server does: 200, then one ERROR event carrying a 410 Status, then close.
    write('ERROR', expired(`too old resource version: ${from} (${store.compactedRv})`).status);
    res.end();
    return;
  }
  ctx.open.add(res);
  const deliver = (change: Change) => {
    const c = store.viewOf(r.res, change);
    if (!c) return;
    const now = match(c.obj);
    const before = c.prev !== undefined && match(c.prev);
    if (c.type === 'ADDED' && now) write('ADDED', c.obj);
    else if (c.type === 'DELETED' && now) write('DELETED', c.obj);
    else if (c.type === 'MODIFIED') {
      // A selector watch sees objects enter and leave its set, as with the real server.
      if (before && now) write('MODIFIED', c.obj);
      else if (!before && now) write('ADDED', c.obj);
      else if (before && !now) write('DELETED', c.obj);
    }
  };
  if (from === undefined) for (const o of store.list(r.res)) if (match(o)) write('ADDED', o);
  for (const c of missed) deliver(c);
  const unsubscribe = store.subscribe(deliver);
  const timers: NodeJS.Timeout[] = [];
  if (bookmarks) {
    timers.push(setInterval(() => write('BOOKMARK', {
      kind: r.res.kind, apiVersion: apiVersionOf(r.res), metadata: { resourceVersion: String(store.rv) },
    }), ctx.bookmarkIntervalMs));
  }
  if (timeoutS > 0) timers.push(setTimeout(() => res.end(), timeoutS * 1000));
  res.on('close', () => {
    unsubscribe();
    timers.forEach((t) => clearInterval(t));
    ctx.open.delete(res);
  });
}
