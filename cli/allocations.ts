/** `kubectl sriov allocations [-n NS] [--network N] [--node N]`: the IPClaims, one row per address. */
import * as z from 'zod/mini';
import { parseIp } from '../src/ipam/cidr';
import { releasedAtMs } from '../src/ipam/pool-release';
import { commandArgs, commonFlags, helpText, names, type FlagSpec } from './args';
import { api, connect } from './cluster';
import { EXIT } from './errors';
import { emit, since, table } from './output';

const FLAGS: FlagSpec[] = [
  { name: 'namespace', short: 'n', value: true, help: "only pods of this namespace" },
  { name: 'network', value: true, help: 'only this network' },
  { name: 'node', value: true, help: 'only this node' },
  { name: 'released', help: 'include released addresses still cooling down (tombstones)' },
];
const flagsSchema = z.object({ ...commonFlags, ...names, released: z.optional(z.boolean()) });

export const ALLOCATIONS_HELP = helpText(
  'kubectl sriov allocations [-n NAMESPACE] [--network NETWORK] [--node NODE] [--released] [-o table|json|yaml]',
  'The cluster-wide IP claims: IP, network, pod, node, VF, kind (fixed, pool, reserved) and since when.',
  FLAGS,
);

function byAddress(a: string, b: string): number {
  const x = parseIp(a);
  const y = parseIp(b);
  return x.family - y.family || (x.value < y.value ? -1 : x.value > y.value ? 1 : 0);
}

export async function allocationsCommand(argv: string[]): Promise<number> {
  const args = commandArgs('allocations', argv, FLAGS, flagsSchema, ALLOCATIONS_HELP);
  if (!args) return EXIT.ok;
  const { flags } = args;
  const c = connect(flags.kubeconfig);
  const items = (await api('list IPClaims', () => c.claims.list())).items
    .filter((x) => !flags.namespace || x.spec.pod.namespace === flags.namespace)
    .filter((x) => !flags.network || x.spec.network === flags.network)
    .filter((x) => !flags.node || x.spec.node === flags.node)
    .filter((x) => flags.released || releasedAtMs(x) === null)
    .sort((a, b) => a.spec.network.localeCompare(b.spec.network) || byAddress(a.spec.ip, b.spec.ip));
  const rows = items.map((x) => {
    const rel = releasedAtMs(x);
    return {
      ip: x.spec.ip,
      network: x.spec.network,
      pod: `${x.spec.pod.namespace}/${x.spec.pod.name}`,
      podUid: x.spec.pod.uid || null,
      node: x.spec.node || null,
      vf: x.spec.vf ?? null,
      kind: x.spec.kind,
      state: rel !== null ? 'released' : x.spec.pod.uid ? 'in use' : 'reserved',
      since: rel !== null ? new Date(rel).toISOString() : x.spec.claimedAt,
      claim: x.metadata?.name,
    };
  });
  emit(flags.output, { items: rows }, () =>
    rows.length
      ? table(['IP', 'NETWORK', 'POD', 'NODE', 'VF', 'KIND', 'STATE', 'SINCE'], rows.map((r) => [r.ip, r.network, r.pod, r.node ?? '-', r.vf ?? '-', r.kind, r.state, since(r.since)]))
      : 'no allocations\n',
  );
  return EXIT.ok;
}
