/**
 * The CNI "skel": turns the process environment and stdin into one validated, typed invocation.
 * Nothing else in the plugin reads CNI_* variables.
 */
import * as z from 'zod/mini';
import { CniCode, UnderlayError } from '../src/errors';
import { describeIssues } from '../src/schemas/format';
import { CONTAINER_ID_RE, IFNAME_RE } from '../src/schemas/netconf';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type Command = (typeof COMMANDS)[number];


const envSchema = z.object({
  CNI_COMMAND: z.enum(COMMANDS),
  CNI_CONTAINERID: z.optional(z.string().check(z.regex(CONTAINER_ID_RE, 'must be alphanumeric plus _ . -'))),
  CNI_NETNS: z.optional(z.string()),
  CNI_IFNAME: z.optional(z.string().check(z.regex(IFNAME_RE, 'must be a valid interface name (1-15 chars, no / : or spaces)'))),
  CNI_ARGS: z.optional(z.string()),
  CNI_PATH: z.optional(z.string()),
});

export interface PodIdentity {
  namespace: string;
  name: string;
  uid: string;
  infraContainerId?: string;
}

export interface Invocation {
  command: Command;
  containerId: string;
  netns: string;
  ifName: string;
  cniPath: string[];
  /** CNI_ARGS as key/value pairs. */
  args: Map<string, string>;
  pod: PodIdentity | null;
  stdin: Buffer;
  rawEnv: NodeJS.ProcessEnv;
}

export function parseCniArgs(s: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!s) return out;
  for (const part of s.split(';')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UnderlayError(CniCode.InvalidEnv, `CNI_ARGS: "${part}" is not KEY=VALUE`);
    out.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return out;
}

function required(cmd: Command): Array<'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME'> {
  switch (cmd) {
    case 'ADD':
    case 'CHECK':
      return ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'];
    case 'DEL':
      return ['CNI_CONTAINERID', 'CNI_IFNAME'];
    default:
      return [];
  }
}

export function parseInvocation(env: NodeJS.ProcessEnv, stdin: Buffer): Invocation {
  const parsed = envSchema.safeParse({
    CNI_COMMAND: env.CNI_COMMAND,
    CNI_CONTAINERID: env.CNI_CONTAINERID || undefined,
    CNI_NETNS: env.CNI_NETNS || undefined,
    CNI_IFNAME: env.CNI_IFNAME || undefined,
    CNI_ARGS: env.CNI_ARGS || undefined,
    CNI_PATH: env.CNI_PATH || undefined,
  });
  if (!parsed.success) throw new UnderlayError(CniCode.InvalidEnv, describeIssues('CNI environment', parsed.error.issues));
  const e = parsed.data;
  const missing = required(e.CNI_COMMAND).filter((k) => !e[k]);
  if (missing.length) {
    throw new UnderlayError(CniCode.InvalidEnv, `CNI environment: ${missing.join(', ')} required for ${e.CNI_COMMAND}`);
  }
  const args = parseCniArgs(e.CNI_ARGS);
  const ns = args.get('K8S_POD_NAMESPACE');
  const name = args.get('K8S_POD_NAME');
  const pod: PodIdentity | null =
    ns && name ? { namespace: ns, name, uid: args.get('K8S_POD_UID') ?? '', infraContainerId: args.get('K8S_POD_INFRA_CONTAINER_ID') ?? '' } : null;
  return {
    command: e.CNI_COMMAND,
    containerId: e.CNI_CONTAINERID ?? '',
    netns: e.CNI_NETNS ?? '',
    ifName: e.CNI_IFNAME ?? '',
    cniPath: (e.CNI_PATH ?? '').split(':').filter(Boolean),
    args,
    pod,
    stdin,
    rawEnv: env,
  };
}
