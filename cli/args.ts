/**
 * Command-line parsing: argv → { positionals, flags } by a small per-command flag table, then the
 * flags are validated with zod/mini so a bad value is a clear usage error (exit 2) naming the flag.
 */
import * as z from 'zod/mini';
import { EXIT, CliError } from './errors';

export interface FlagSpec {
  /** Long name without dashes, e.g. "kubeconfig". */
  name: string;
  short?: string;
  /** Takes a value (else boolean). */
  value?: boolean;
  /** May repeat (values collected in an array). */
  repeat?: boolean;
  help: string;
}

export interface Parsed {
  positionals: string[];
  flags: Record<string, string | string[] | boolean>;
}

export const COMMON_FLAGS: FlagSpec[] = [
  { name: 'kubeconfig', value: true, help: 'kubeconfig file (default: in-cluster, $KUBECONFIG, ~/.kube/config)' },
  { name: 'output', short: 'o', value: true, help: 'table (default), json or yaml' },
  { name: 'progress', help: 'report progress on stderr even when it is not a terminal' },
  { name: 'help', short: 'h', help: 'show this help' },
];

export function parseArgs(argv: string[], specs: FlagSpec[], command: string): Parsed {
  const all = [...specs, ...COMMON_FLAGS];
  const out: Parsed = { positionals: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      out.positionals.push(a);
      continue;
    }
    const long = a.startsWith('--');
    const [rawName, inline] = long ? splitOnce(a.slice(2), '=') : [a.slice(1, 2), a.length > 2 ? a.slice(2) : undefined];
    const spec = all.find((s) => (long ? s.name === rawName : s.short === rawName));
    if (!spec) throw new CliError(EXIT.usage, `${command}: unknown flag ${a} (see ${command} --help)`);
    let v: string | boolean = true;
    if (spec.value) {
      const next = inline ?? argv[++i];
      if (next === undefined) throw new CliError(EXIT.usage, `${command}: flag --${spec.name} needs a value`);
      v = next;
    } else if (inline !== undefined) throw new CliError(EXIT.usage, `${command}: flag --${spec.name} takes no value`);
    if (spec.repeat) {
      const prev = out.flags[spec.name];
      out.flags[spec.name] = [...(Array.isArray(prev) ? prev : []), v as string];
    } else out.flags[spec.name] = v;
  }
  return out;
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i === -1 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

export const outputFormat = z._default(z.enum(['table', 'json', 'yaml']), 'table');
const dnsName = z.string().check(z.regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS name'), z.maxLength(253));
export const commonFlags = {
  kubeconfig: z.optional(z.string().check(z.minLength(1))),
  output: outputFormat,
  progress: z.optional(z.boolean()),
  help: z.optional(z.boolean()),
};
export const names = { namespace: z.optional(dnsName), network: z.optional(dnsName), node: z.optional(dnsName) };

/** Validate flags with a zod/mini object; an invalid one is a usage error naming the flag. */
export function checkFlags<S extends z.ZodMiniType>(command: string, schema: S, flags: Parsed['flags']): z.infer<S> {
  const r = schema.safeParse(flags);
  if (r.success) return r.data as z.infer<S>;
  const i = r.error.issues[0]!;
  throw new CliError(EXIT.usage, `${command}: flag --${i.path.map(String).join('.')}: ${i.message}`);
}

/**
 * A subcommand's arguments: parsed, validated (a bad flag is a usage error naming it), and null when
 * --help was asked for, after printing the help. Unless `positionals` is set, arguments are refused.
 */
export function commandArgs<S extends z.ZodMiniType>(
  command: string,
  argv: string[],
  specs: FlagSpec[],
  schema: S,
  help: string,
  opts: { positionals?: boolean; hint?: string } = {},
): { flags: z.infer<S>; positionals: string[] } | null {
  const parsed = parseArgs(argv, specs, command);
  const flags = checkFlags(command, schema, parsed.flags);
  if ((flags as { help?: boolean }).help) {
    process.stdout.write(help);
    return null;
  }
  if (!opts.positionals && parsed.positionals.length) {
    throw new CliError(EXIT.usage, `${command}: unexpected argument "${parsed.positionals[0]}"${opts.hint ? ` (${opts.hint})` : ''}`);
  }
  return { flags, positionals: parsed.positionals };
}

export function helpText(usage: string, about: string, specs: FlagSpec[]): string {
  const rows = [...specs, ...COMMON_FLAGS].map((s) => {
    const left = `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.value ? ' VALUE' : ''}`;
    return `  ${left.padEnd(30)} ${s.help}${s.repeat ? ' (repeatable)' : ''}`;
  });
  return `Usage: ${usage}\n\n${about}\n\nFlags:\n${rows.join('\n')}\n`;
}
