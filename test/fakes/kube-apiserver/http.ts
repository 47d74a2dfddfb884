// HTTP plumbing shared by the fake's handlers: JSON bodies in and out, tokens, small parsers.
import type http from 'node:http';
import { badRequest, failure } from './status';
import { type KubeObject, isRecord } from './types';

const MAX_BODY = 3 * 1024 * 1024;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function send(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export const notFoundPath = () => failure(404, 'NotFound', 'the server could not find the requested resource', {});

export const tooLarge = (want: number, current: number) =>
  failure(504, 'Timeout', `Too large resource version: ${want}, current: ${current}`, { retryAfterSeconds: 1 });

export function parseRv(s: string): number {
  if (!/^[0-9]+$/.test(s)) throw badRequest(`invalid resource version "${s}"`);
  return Number(s);
}

export const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;

export function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
}

export function decodeContinue(s: string): { rv: number; start: string } {
  try {
    const t: unknown = JSON.parse(Buffer.from(s, 'base64url').toString());
    if (isRecord(t) && typeof t.rv === 'number' && typeof t.start === 'string') return { rv: t.rv, start: t.start };
  } catch {
    // fall through to the 400 below
  }
  throw badRequest('continue key is not valid');
}

export async function readRaw(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw failure(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw badRequest(`the body of the request is not valid JSON: ${(e as Error).message}`);
  }
}

export async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
  if (!type.endsWith('json')) {
    throw failure(415, 'UnsupportedMediaType', `the fake API server accepts JSON only, not ${type}`);
  }
  return parseJson(await readRaw(req));
}

const WARNINGS_TOTAL = 4 * 1024;
const WARNING_ITEM_WHEN_OVER = 256;

/**
 * Adds `Warning: 299 - "..."` headers as kube-apiserver's warning recorder does: at most 4 KiB of
 * warning text per response; past that every message is cut to 256 characters and the ones that
 * still do not fit are dropped (a client's header limit is never the one that breaks).
 */
export function addWarnings(res: http.ServerResponse, texts: string[]): void {
  if (!texts.length || res.headersSent) return;
  const prior = res.getHeader('Warning');
  const all = [...(Array.isArray(prior) ? prior.map((p) => JSON.parse(p.slice('299 - '.length)) as string) : []), ...texts];
  const fits = (list: string[]) => list.reduce((n, t) => n + t.length, 0) <= WARNINGS_TOTAL;
  let kept = all;
  if (!fits(kept)) {
    kept = [];
    for (const t of all.map((x) => x.slice(0, WARNING_ITEM_WHEN_OVER))) if (fits([...kept, t])) kept.push(t);
  }
  res.setHeader('Warning', kept.map((t) => `299 - ${JSON.stringify(t)}`));
}
