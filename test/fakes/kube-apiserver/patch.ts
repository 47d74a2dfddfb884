// The two patch formats the fake applies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).
// Strategic merge patch is served as a merge patch for the built-in kinds (see server.ts).
import { deepEqual, isRecord } from './types';

export class PatchError extends Error {}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return patch;
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`invalid JSON pointer "${path}"`);
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

type Container = Record<string, unknown> | unknown[];

/** Walks to the parent of the last token; throws when a step is missing. */
function parentOf(doc: unknown, tokens: string[], path: string): { parent: Container; last: string } {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, path, false)];
    else if (isRecord(cur) && t in cur) cur = cur[t];
    else throw new PatchError(`doc is missing path: "${path}"`);
  }
  if (!Array.isArray(cur) && !isRecord(cur)) throw new PatchError(`doc is missing path: "${path}"`);
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

function arrayIndex(arr: unknown[], t: string, path: string, forInsert: boolean): number {
  if (forInsert && t === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(t)) throw new PatchError(`invalid array index "${t}" in "${path}"`);
  const i = Number(t);
  if (i > arr.length || (!forInsert && i >= arr.length)) throw new PatchError(`array index out of bounds in "${path}"`);
  return i;
}

function get(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const t of pointer(path)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, path, false)];
    else if (isRecord(cur) && t in cur) cur = cur[t];
    else throw new PatchError(`doc is missing path: "${path}"`);
  }
  return cur;
}

function remove(doc: unknown, path: string): unknown {
  const tokens = pointer(path);
  if (tokens.length === 0) throw new PatchError('cannot remove the whole document');
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, last, path, false), 1)[0];
  if (!(last in parent)) throw new PatchError(`unable to remove nonexistent key: ${last}`);
  const v = parent[last];
  delete parent[last];
  return v;
}

function add(doc: unknown, path: string, value: unknown, replace: boolean): unknown {
  const tokens = pointer(path);
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) {
    if (replace) parent[arrayIndex(parent, last, path, false)] = value;
    else parent.splice(arrayIndex(parent, last, path, true), 0, value);
  } else {
    if (replace && !(last in parent)) throw new PatchError(`replace operation does not apply: doc is missing key: ${path}`);
    parent[last] = value;
  }
  return doc;
}

export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('a JSON patch must be an array of operations');
  let out = structuredClone(doc);
  for (const op of ops) {
    if (!isRecord(op) || typeof op.op !== 'string' || typeof op.path !== 'string') {
      throw new PatchError(`invalid JSON patch operation: ${JSON.stringify(op)}`);
    }
    const needsValue = op.op === 'add' || op.op === 'replace' || op.op === 'test';
    if (needsValue && !('value' in op)) throw new PatchError(`operation "${op.op}" at "${op.path}" has no value`);
    const from = typeof op.from === 'string' ? op.from : undefined;
    switch (op.op) {
      case 'add': out = add(out, op.path, structuredClone(op.value), false); break;
      case 'replace': out = add(out, op.path, structuredClone(op.value), true); break;
      case 'remove': remove(out, op.path); break;
      case 'move': {
        if (from === undefined) throw new PatchError('move needs "from"');
        const v = remove(out, from);
        out = add(out, op.path, v, false);
        break;
      }
      case 'copy': {
        if (from === undefined) throw new PatchError('copy needs "from"');
        out = add(out, op.path, structuredClone(get(out, from)), false);
        break;
      }
      case 'test':
        if (!deepEqual(get(out, op.path), op.value)) {
          throw new PatchError(`testing value ${op.path} failed`);
        }
        break;
      default: throw new PatchError(`unexpected JSON patch operation "${op.op}"`);
    }
  }
  return out;
}
