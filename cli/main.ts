/**
 * kubectl-sriov: the ops CLI (a kubectl plugin: `kubectl sriov ...`). Subcommands: validate,
 * explain, allocations, nodes, gc. Tables by default, -o json|yaml; progress on stderr; exit codes
 * in cli/errors.ts and docs/cli.md.
 */
import { UnderlayError } from '../src/errors';
import { allocationsCommand } from './allocations';
import { CliError, EXIT } from './errors';
import { explainCommand } from './explain';
import { gcCommand } from './gc';
import { nodesCommand } from './nodes';
import { validateCommand } from './validate';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; about: string }> = {
  validate: { run: validateCommand, about: 'dry-run plan of networks and registrations (files and/or the cluster)' },
  explain: { run: explainCommand, about: 'what a pod will get, and from which ConfigMap key @ resourceVersion' },
  allocations: { run: allocationsCommand, about: 'IP claims: IP, pod, node, VF, since' },
  nodes: { run: nodesCommand, about: 'VF capacity, allocatable, allocated, unhealthy per node and pool' },
  gc: { run: gcCommand, about: 'report leaked claims, then release those still stale' },
};

const HELP =
  'Usage: kubectl sriov COMMAND [flags]\n\nCommands:\n' +
  Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(12)} ${v.about}`).join('\n') +
  '\n\nRun "kubectl sriov COMMAND --help" for its flags. Exit codes: 0 ok, 1 problems found, 2 usage,\n3 not registered (explain), 4 unreadable input file, 5 Kubernetes API error.\n';

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd ? EXIT.ok : EXIT.usage;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    process.stderr.write(`kubectl-sriov: unknown command "${cmd}"\n\n${HELP}`);
    return EXIT.usage;
  }
  return c.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof CliError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`error: ${e instanceof UnderlayError || e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = EXIT.api;
    }
  },
);
