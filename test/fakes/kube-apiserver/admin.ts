// The HTTP face of the fake's test controls (see FakeKubeApiServer for the in-process ones).
import type http from 'node:http';
import { readJson, send, sleep } from './http';
import type { FakeKubeApiServer, InjectedFailure, Verb } from './server';
import { badRequest, failure } from './status';
import type { KubeObject } from './types';

/** /_fake/* — test controls over HTTP for the standalone process; real clients never call these. */
export async function serveAdmin(fake: FakeKubeApiServer, req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
  const q = url.searchParams;
  const num = (k: string) => {
    const v = Number(q.get(k));
    if (!Number.isFinite(v)) throw badRequest(`query parameter ${k} must be a number`);
    return v;
  };
  const op = `${req.method} ${url.pathname.slice('/_fake'.length)}`;
  switch (op) {
    case 'GET /state': return send(res, 200, { resourceVersion: fake.store.rv, compactedRv: fake.store.compactedRv, historyLimit: fake.store.historyLimit, latencyMs: fake.latency });
    case 'POST /compact': return send(res, 200, { compactedRv: fake.compact() });
    case 'POST /history-limit': fake.setHistoryLimit(num('n')); return send(res, 200, { historyLimit: fake.store.historyLimit });
    case 'POST /latency': fake.setLatency(num('ms')); return send(res, 200, { latencyMs: fake.latency });
    case 'GET /counters': return send(res, 200, fake.counters());
    case 'POST /counters/reset': fake.resetCounters(); return send(res, 200, fake.counters());
    case 'GET /requests': return send(res, 200, fake.requests());
    case 'POST /requests/clear': fake.clearRequests(); return send(res, 200, {});
    case 'POST /fail': {
      const f: InjectedFailure = { code: num('code'), count: q.has('count') ? num('count') : 1 };
      if (q.get('verb')) f.verb = q.get('verb') as Verb;
      if (q.get('resource')) f.resource = q.get('resource')!;
      if (q.get('message')) f.message = q.get('message')!;
      fake.failNext(f);
      return send(res, 200, f);
    }
    case 'POST /outage': {
      // The reply goes out first; then the API is down for `ms` and comes back on the same port.
      const ms = num('ms');
      send(res, 200, { downForMs: ms });
      res.on('finish', () => void fake.stop().then(() => sleep(ms)).then(() => (fake.isClosed ? undefined : fake.start())));
      return;
    }
    case 'POST /close-watches': return send(res, 200, { closed: fake.closeWatches() });
    case 'POST /put': return send(res, 200, fake.put((await readJson(req)) as KubeObject));
    case 'POST /finalize-pod': return send(res, 200, { removed: fake.finalizePod(q.get('namespace') ?? '', q.get('name') ?? '') });
    default: throw failure(404, 'NotFound', `unknown fake control ${op}`);
  }
}
