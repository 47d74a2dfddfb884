/** `kubectl sriov nodes`: VF capacity per node and pool, from the SriovNodeStates the agents publish. */
import * as z from 'zod/mini';
import { describeIssues } from '../src/schemas/format';
import { nodeStateStatusSchema, type PfPolicyStatus } from '../src/schemas/node-state';
import { commandArgs, commonFlags, helpText, type FlagSpec } from './args';
import { api, connect } from './cluster';
import { EXIT } from './errors';
import { emit, since, table } from './output';

const FLAGS: FlagSpec[] = [];
const flagsSchema = z.object({ ...commonFlags });

export const NODES_HELP = helpText(
  'kubectl sriov nodes [-o table|json|yaml]',
  'VF capacity, allocatable (healthy), allocated and unhealthy per node and VF pool, and the PF link\n' +
    'speeds, as each node agent last published them (SriovNodeState objects). Then the node policy per\n' +
    'node and PF: VFs actual/desired, MTU, link, VF drivers, and Applied / Blocked (with the pods) /\n' +
    'Failed, plus every policy entry the node rejected.',
  FLAGS,
);

export async function nodesCommand(argv: string[]): Promise<number> {
  const args = commandArgs('nodes', argv, FLAGS, flagsSchema, NODES_HELP);
  if (!args) return EXIT.ok;
  const { flags } = args;
  const c = connect(flags.kubeconfig);
  const states = (await api('list SriovNodeStates', () => c.nodeStates.list())).items.sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  const rows: Array<Record<string, unknown>> = [];
  const policy: Array<Record<string, unknown>> = [];
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
    const pol = st.data.policy;
    if (pol) {
      for (const pf of pol.pfs) policy.push({ node, ...pf, appliedAt: pol.appliedAt });
      for (const r of pol.rejected) problems.push(`node ${node}: policy rejected: ${r}`);
    }
  }
  emit(flags.output, { items: rows, policy, problems }, () => {
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
    return t + (policy.length ? `\n${policyTable(policy as unknown as PolicyRow[])}` : '') + problems.map((p) => `warning: ${p}\n`).join('');
  });
  return EXIT.ok;
}

type PolicyRow = PfPolicyStatus & { node: string; appliedAt: string };

const want = (actual: string, desired: string | undefined): string => (desired === undefined || desired === actual ? actual : `${actual} (want ${desired})`);

/** Per node and PF: what the node policy wants, what is there, and how the last pass went. */
function policyTable(rows: PolicyRow[]): string {
  return table(
    ['NODE', 'PF', 'VFS', 'MTU', 'LINK', 'VF DRIVERS', 'STATE', 'MESSAGE'],
    rows.map((r) => {
      const bad = r.conditions.find((c) => c.type === 'Blocked') ?? r.conditions.find((c) => c.type === 'Failed');
      const applied = r.conditions.find((c) => c.type === 'Applied');
      const state = bad ? bad.type : applied?.status === 'True' ? (r.externallyManaged ? 'Verified' : 'Applied') : (applied?.reason ?? '-');
      const drivers = new Map<string, number>();
      for (const d of r.actual.vfDrivers) drivers.set(d || 'unbound', (drivers.get(d || 'unbound') ?? 0) + 1);
      return [
        r.node,
        `${r.name} (${r.pciAddr})`,
        want(`${r.actual.numVfs}/${r.actual.totalVfs}`, r.desired.numVfs === undefined ? undefined : `${r.desired.numVfs}/${r.actual.totalVfs}`),
        want(String(r.actual.mtu ?? '-'), r.desired.mtu === undefined ? undefined : String(r.desired.mtu)),
        want(r.actual.linkUp === null ? '-' : r.actual.linkUp ? 'up' : 'down', r.desired.linkUp ? 'up' : undefined),
        [...drivers].map(([d, n]) => `${n}x${d}`).join(',') || '-',
        state,
        (bad ?? applied)?.message ?? '',
      ];
    }),
  );
}
