// Reads the apiserver Status out of a client-node ApiException (its body arrives as text).
import type { Status } from './status';

export function apiStatus(err: unknown): Status {
  const e = err as { code?: number; body?: unknown };
  if (typeof e?.code !== 'number') throw err;
  const body: unknown = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
  return body as Status;
}

/** Runs `fn`, expecting it to fail with an apiserver Status; returns that Status. */
export async function expectStatus(fn: () => Promise<unknown>): Promise<Status> {
  try {
    await fn();
  } catch (err) {
    return apiStatus(err);
  }
  throw new Error('expected the API call to fail, it succeeded');
}
