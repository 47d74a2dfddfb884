/** `kubectl sriov nodes`: VF capacity per node and pool, from the SriovNodeStates the agents publish. */
import * as z from 'zod/mini';
import { describeIssues } from '../src/schemas/format';
import { nodeStateStatusSchema } from '../src/schemas/node-state';
import { commandArgs, commonFlags, helpText, type FlagSpec } from './args';
import { api, connect } from './cluster';
import { EXIT } from './errors';
import { emit, since, table } from './output';

const FLAGS: FlagSpec[] = [];
const flagsSchema = z.object({ ...commonFlags });

export const NODES_HELP = helpText(
  'kubectl sriov nodes [-o table|json|yaml]',
  'VF capacity, allocatable (healthy), allocated and unhealthy per node and VF pool, and the PF link\n' +
    'speeds, as each node agent last published them (SriovNodeState objects).',
  FLAGS,
);

export async function nodesCommand(argv: string[]): Promise<number> {
  const args = commandArgs('nodes', argv, FLAGS, flagsSchema, NODES_HELP);
  if (!args) return EXIT.ok;
  const { flags } = args;
  const c = connect(flags.kubeconfig);
  const states = (await api('list SriovNodeStates', () => c.nodeStates.list())).items.sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  const rows: Array<Record<string, unknown>> = [];
  const problems: string[] = [];
  for (const s of states) {
    const node = s.metadata?.name ?? '?';
    const st = nodeStateStatusSchema.safeParse(s.status);
    if (!st.success) {
      problems.push(describeIssues(`SriovNodeState ${node}: status`, st.error.issues));
      continue;
    }
    for (const p of st.data.pools) {
      rows.push({ node, pool: p.resourceName, capacity: p.capacity, allocatable: p.allocatable, allocated: p.allocated, unhealthy: p.unhealthy, pfs: p.pfs, updatedAt: st.data.updatedAt });
    }
  }
  emit(flags.output, { items: rows, problems }, () => {
    const t = rows.length
      ? table(
          ['NODE', 'POOL', 'CAPACITY', 'ALLOCATABLE', 'ALLOCATED', 'UNHEALTHY', 'PFS', 'UPDATED'],
          rows.map((r) => [
            String(r.node), String(r.pool), String(r.capacity), String(r.allocatable), String(r.allocated), String(r.unhealthy),
            (r.pfs as { name: string; linkSpeedMbps?: number | null }[]).map((pf) => `${pf.name}${pf.linkSpeedMbps ? `@${pf.linkSpeedMbps}Mb/s` : ''}`).join(',') || '-',
            since(String(r.updatedAt)),
          ]),
        )
      : 'no SriovNodeStates published (are the node agents running?)\n';
    return t + problems.map((p) => `warning: ${p}\n`).join('');
  });
  return EXIT.ok;
}
