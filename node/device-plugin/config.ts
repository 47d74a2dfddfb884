/**
 * Loading the pools config. Pools are validated one at a time: a bad pool is reported (naming the
 * pool and the field) and dropped, the valid ones keep serving. Only a file that cannot be read or
 * parsed at all is rejected as a whole, and then the caller keeps the config it had.
 */
import * as fs from 'node:fs';
import YAML from 'yaml';
import type { z } from 'zod';
import { describeIssues } from '../../src/schemas/format';
import { PoolSchema, PoolsConfigSchema, type Pool } from '../../src/schemas/device-pools';
import type { VfRecord } from './discovery';
import { fullResourceName, poolMatches } from './selectors';

export interface PoolsConfig {
  /** Valid pools in file order (first match wins). */
  pools: Pool[];
  /** One line per rejected pool or problem, naming the pool and the field. */
  errors: string[];
}

export class ConfigFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`pools config ${file}: ${message}`);
    this.name = 'ConfigFileError';
  }
}

/** One line per issue, each in the project's "<object>: field "<path>": <message>" form. */
function issueLines(label: string, err: z.ZodError): string[] {
  return err.issues.map((i) => describeIssues(label, [i]));
}

function poolLabel(raw: unknown, index: number): string {
  const name = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>).resourceName : undefined;
  return typeof name === 'string' && name !== '' ? `pool "${name}" (resourceList[${index}])` : `pool resourceList[${index}]`;
}

/** Parse and validate the file's text. Throws ConfigFileError only when nothing can be used. */
export function parsePoolsConfig(text: string, file: string): PoolsConfig {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new ConfigFileError(file, `not valid JSON or YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const env = PoolsConfigSchema.safeParse(doc);
  if (!env.success) throw new ConfigFileError(file, describeIssues('top level', env.error.issues));
  const pools: Pool[] = [];
  const errors: string[] = [];
  const seen = new Map<string, string>();
  env.data.resourceList.forEach((raw, i) => {
    const label = poolLabel(raw, i);
    const r = PoolSchema.safeParse(raw);
    if (!r.success) {
      errors.push(...issueLines(label, r.error));
      return;
    }
    const full = fullResourceName(r.data);
    const earlier = seen.get(full);
    if (earlier) {
      errors.push(`${label}: field "resourceName": "${full}" is already used by ${earlier}; pool rejected`);
      return;
    }
    seen.set(full, label);
    pools.push(r.data);
  });
  return { pools, errors };
}

export function loadPoolsConfig(file: string): PoolsConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigFileError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parsePoolsConfig(text, file);
}

/**
 * Reject pools that overlap an earlier pool on the devices present now: a VF matched by two pools
 * would be advertised twice. Checked when a config is loaded; devices that show up later and match
 * several pools go to the first (and are logged by the daemon).
 */
export function rejectOverlaps(config: PoolsConfig, vfs: readonly VfRecord[]): PoolsConfig {
  const kept: Pool[] = [];
  const errors = [...config.errors];
  for (const pool of config.pools) {
    let clash: string | null = null;
    for (const vf of vfs) {
      if (!poolMatches(pool, vf)) continue;
      const owner = kept.find((k) => poolMatches(k, vf));
      if (owner) {
        clash = `pool "${pool.resourceName}": field "selectors": overlaps pool "${owner.resourceName}" (both match VF ${vf.pciAddr}); pool rejected`;
        break;
      }
    }
    if (clash) errors.push(clash);
    else kept.push(pool);
  }
  return { pools: kept, errors };
}
