/**
 * Which program the one executable runs (docs/packaging.md, "One executable"). Pure: the entry
 * (exe/main.ts) hands it the names it was invoked as and its arguments.
 *
 * By name, as links or copies of dist/bin/sriov-underlay-node:
 *   sriov-underlay-node            the node daemon
 *   kubectl-sriov                  the kubectl plugin
 *   sriov-underlay-cni             the standalone CNI (the shim's fallback)
 *   sriov-underlay                 the standalone CNI too: the CNI type's own name, for a host that
 *                                  installs it without the shim, and for a shim that execs the
 *                                  fallback with its own argv[0]
 * By first argument, when the name says daemon (or says nothing): `sriov-underlay-node
 * cni|cli|daemon ...`. Daemon flags all start with "--", so the three words never clash with them.
 * Under a CLI or CNI name the first argument is that program's own: `kubectl sriov daemon` is an
 * unknown CLI command, never a daemon started from kubectl, and the CNI (which reads no arguments)
 * stays the CNI whatever it is given.
 */
import * as path from 'node:path';

export type Program = 'daemon' | 'cli' | 'cni';

export const PROGRAM_NAMES: Readonly<Record<string, Program>> = {
  'sriov-underlay-node': 'daemon',
  'kubectl-sriov': 'cli',
  'sriov-underlay-cni': 'cni',
  'sriov-underlay': 'cni',
};

export const SUBCOMMANDS: Readonly<Record<string, Program>> = { daemon: 'daemon', cli: 'cli', cni: 'cni' };

export interface Choice {
  program: Program;
  /** The arguments the program sees after argv[0] and argv[1] (the subcommand word removed). */
  args: string[];
}

/**
 * names: what the process was invoked as, best first: argv[0] as the caller passed it (a link's
 * own name survives there) and then the executable's real path (a renamed copy). An unknown name
 * falls through to the next; none known means the node executable under a name of its own.
 */
export function chooseProgram(names: readonly string[], args: readonly string[]): Choice {
  const byName = names.map((n) => path.basename(n)).find((b) => Object.hasOwn(PROGRAM_NAMES, b));
  const program = byName === undefined ? 'daemon' : PROGRAM_NAMES[byName]!;
  const first = args[0];
  if (program === 'daemon' && first !== undefined && Object.hasOwn(SUBCOMMANDS, first)) return { program: SUBCOMMANDS[first]!, args: args.slice(1) };
  return { program, args: [...args] };
}
