/** GET /metrics over HTTP for a prom-client registry: the node daemon's components each serve their own. */
import * as http from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../src/log';

/** Serve GET /metrics on host:port (host may be empty: all addresses). Resolves with the bound port. */
export function serveMetrics(registry: Registry, address: string, log: Logger): Promise<{ server: http.Server; port: number }> {
  const m = /^(.*):(\d+)$/.exec(address);
  if (!m) throw new Error(`metrics address "${address}" is not host:port`);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    registry
      .metrics()
      .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
      .catch((e: Error) => res.writeHead(500).end(`${e.message}\n`));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
    server.listen(Number(m[2]), host === '' ? undefined : host, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : Number(m[2]);
      log.info({ host, port }, 'metrics listening');
      resolve({ server, port });
    });
  });
}
