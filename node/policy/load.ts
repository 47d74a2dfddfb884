/**
 * Reading the node policy file (a mounted ConfigMap key). Entries are validated one at a time: a bad
 * entry is rejected whole and named ("ConfigMap sriov-underlay/node-policy key "policy.yaml":
 * policies[1] "grow": field "numVfs": ..."), the others stay. A file that cannot be read or whose
 * envelope is unusable throws PolicyFileError, and the caller keeps the policy it had (changing
 * nothing on the node).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { describeIssues } from '../../src/schemas/format';
import { POLICY_LIMITS, PolicyEntrySchema, PolicyFileSchema, type PolicyEntry } from './schema';

export interface PolicySource {
  /** "namespace/name" of the ConfigMap the file is mounted from (for messages). */
  configMap: string;
  file: string;
}

export interface LoadedPolicy {
  entries: PolicyEntry[];
  /** One line per rejected entry, naming ConfigMap, key, entry and field. */
  errors: string[];
}

export class PolicyFileError extends Error {
  override name = 'PolicyFileError';
}

export const sourceLabel = (src: PolicySource): string => `ConfigMap ${src.configMap} key "${path.basename(src.file)}"`;

function entryLabel(src: PolicySource, raw: unknown, i: number): string {
  const name = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>).name : undefined;
  return `${sourceLabel(src)}: policies[${i}]${typeof name === 'string' && name.length <= 63 ? ` "${name}"` : ''}`;
}

export function parsePolicy(text: string, src: PolicySource): LoadedPolicy {
  const label = sourceLabel(src);
  if (Buffer.byteLength(text) > POLICY_LIMITS.bytes) throw new PolicyFileError(`${label}: ${Buffer.byteLength(text)} bytes, more than the ${POLICY_LIMITS.bytes} allowed`);
  let doc: unknown;
  try {
    // maxAliasCount bounds "billion laughs" alias expansion.
    doc = YAML.parse(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new PolicyFileError(`${label}: not valid JSON or YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = { policies: [] }; // an empty key: no policy
  const env = PolicyFileSchema.safeParse(doc);
  if (!env.success) throw new PolicyFileError(describeIssues(label, env.error.issues));
  const entries: PolicyEntry[] = [];
  const errors: string[] = [];
  const names = new Map<string, number>();
  env.data.policies.forEach((raw, i) => {
    const el = entryLabel(src, raw, i);
    const r = PolicyEntrySchema.safeParse(raw);
    if (!r.success) {
      errors.push(describeIssues(el, r.error.issues));
      return;
    }
    const earlier = names.get(r.data.name);
    if (earlier !== undefined) {
      errors.push(`${el}: field "name": "${r.data.name}" is already used by policies[${earlier}]; entry rejected`);
      return;
    }
    names.set(r.data.name, i);
    entries.push(r.data);
  });
  return { entries, errors };
}

export function loadPolicy(src: PolicySource): LoadedPolicy {
  let text: string;
  try {
    const st = fs.statSync(src.file);
    if (st.size > POLICY_LIMITS.bytes) throw new PolicyFileError(`${sourceLabel(src)}: ${st.size} bytes, more than the ${POLICY_LIMITS.bytes} allowed`);
    text = fs.readFileSync(src.file, 'utf8');
  } catch (e) {
    if (e instanceof PolicyFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    // No file: no ConfigMap mounted (optional volume), so no policy at all.
    if (code === 'ENOENT') return { entries: [], errors: [] };
    throw new PolicyFileError(`${sourceLabel(src)}: cannot read ${src.file}: ${code ?? (e as Error).message}`);
  }
  return parsePolicy(text, src);
}
