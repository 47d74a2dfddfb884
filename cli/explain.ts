/**
 * `kubectl sriov explain POD -n NS`: what the pod will get (or got), from which ConfigMap key and
 * resourceVersion, and the claims that hold its addresses; or why its registration is rejected.
 * The answer is computed by the same registration index the node agents serve from.
 */
import * as z from 'zod/mini';
import type { IPClaim } from '../src/ipam/claims';
import { isTombstone } from '../src/ipam/pool-release';
import { RegistrationIndex } from '../src/registrations/index';
import { formatSource } from '../src/registrations/types';
import { commandArgs, commonFlags, helpText, type FlagSpec } from './args';
import { api, clusterConfigMaps, connect } from './cluster';
import { CliError, EXIT } from './errors';
import { emit, progress } from './output';

const FLAGS: FlagSpec[] = [
  { name: 'namespace', short: 'n', value: true, help: "the pod's namespace (default: default)" },
  { name: 'network', value: true, help: 'the attachment to explain, for a pod registered on several networks (the NAD\'s netconf "name")' },
];
const flagsSchema = z.object({
  ...commonFlags,
  namespace: z._default(z.string().check(z.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name')), 'default'),
  network: z.optional(z.string().check(z.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a network name (a DNS label)'))),
});

export const EXPLAIN_HELP = helpText(
  'kubectl sriov explain POD [-n NAMESPACE] [--network NETWORK] [-o table|json|yaml]',
  'What POD will get on its SR-IOV network: addresses (or the pool and any reservation), gateway,\n' +
    'routes, VLAN, QoS, MAC, MTU, the source ConfigMap key @ resourceVersion, and the IPClaims\n' +
    'holding its addresses. The pod does not need to exist. Exit 1 if its registration is rejected\n' +
    '(the message names ConfigMap, key and field), 3 if it has none.',
  FLAGS,
);

function claimView(c: IPClaim) {
  return {
    name: c.metadata?.name,
    ip: c.spec.ip,
    kind: c.spec.kind,
    podUid: c.spec.pod.uid || null,
    node: c.spec.node || null,
    vf: c.spec.vf ?? null,
    claimedAt: c.spec.claimedAt,
    released: isTombstone(c),
  };
}

export async function explainCommand(argv: string[]): Promise<number> {
  const args = commandArgs('explain', argv, FLAGS, flagsSchema, EXPLAIN_HELP, { positionals: true });
  if (!args) return EXIT.ok;
  const { flags } = args;
  const [pod, extra] = args.positionals;
  if (!pod || extra !== undefined) throw new CliError(EXIT.usage, 'explain: give exactly one pod name (kubectl sriov explain POD -n NAMESPACE)');
  const prog = progress('explain', flags.progress);
  const c = connect(flags.kubeconfig);
  const index = new RegistrationIndex();
  index.replaceAll(await clusterConfigMaps(c));
  prog.step(`indexed ${index.registrationKeyCount} registration keys`);
  const r = index.lookup(flags.namespace, pod, flags.network);
  const who = `pod ${flags.namespace}/${pod}`;
  if (r.kind === 'not-registered') {
    emit(flags.output, { pod: `${flags.namespace}/${pod}`, registered: false }, () => `${who}: no registration (no key "${pod}" or StatefulSet key in a registration ConfigMap of namespace ${flags.namespace}); the netconf's own settings apply\n`);
    return EXIT.notFound;
  }
  if (r.kind === 'rejected') {
    const j = r.rejection;
    emit(flags.output, { pod: `${flags.namespace}/${pod}`, registered: true, rejected: true, reason: j.reason, configMap: `${j.namespace}/${j.configMap}`, key: j.key, field: j.field, message: j.message }, () => `${who}: REJECTED (${j.reason})\n  ${j.message}\n`);
    return EXIT.problems;
  }
  const s = r.settings;
  const all = (await api('list IPClaims', () => c.claims.list())).items;
  const claims = all.filter((x) => x.spec.network === s.network && x.spec.pod.namespace === flags.namespace && x.spec.pod.name === pod && !isTombstone(x));
  const reserved = claims.filter((x) => x.spec.kind === 'reserved');
  const data = {
    pod: `${flags.namespace}/${pod}`,
    registered: true,
    source: s.source,
    network: s.network,
    resourceName: s.resourceName,
    vlan: s.vlan,
    addresses: s.pool ? claims.map((x) => x.spec.ip) : s.ips,
    pool: s.pool ? { network: s.network, reserve: s.pool.reserve } : undefined,
    gateways: s.gateways,
    routes: s.routes,
    mtu: s.mtu,
    mac: s.mac,
    qos: { maxTxRateMbps: s.maxTxRateMbps, minTxRateMbps: s.minTxRateMbps },
    duplicateDetection: s.duplicateDetection,
    claims: claims.map(claimView),
  };
  emit(flags.output, data, () => {
    const rows: Array<[string, string]> = [
      ['registration', formatSource(s.source)],
      ['network', `${s.network} (VLAN ${s.vlan}, VF pool ${s.resourceName})`],
    ];
    if (s.pool) {
      const got = claims.map((x) => x.spec.ip).join(', ');
      rows.push(['addresses', got ? `${got} (from pool ${s.network}${reserved.length ? ', reserved before the pod' : ''})` : `from pool ${s.network} at pod creation${s.pool.reserve ? ' (reservation pending: no agent has claimed one yet)' : ''}`]);
    } else rows.push(['addresses', s.ips.join(', ')]);
    rows.push(['gateways', s.gateways.join(', ') || '(none)']);
    rows.push(['routes', s.routes.map((x) => (x.gw ? `${x.dst} via ${x.gw}` : x.dst)).join(', ') || '(none)']);
    if (s.mtu !== undefined) rows.push(['mtu', String(s.mtu)]);
    if (s.mac) rows.push(['mac', s.mac]);
    rows.push(['qos', `max ${s.maxTxRateMbps ?? 'unlimited'} Mbps, min ${s.minTxRateMbps ?? 0} Mbps`]);
    rows.push(['duplicate check', s.duplicateDetection ? 'ARP probe / IPv6 DAD at ADD' : 'off']);
    if (claims.length) {
      for (const x of claims) {
        rows.push(['claim', `${x.metadata?.name}: ${x.spec.ip} ${x.spec.pod.uid ? `held by uid ${x.spec.pod.uid} on node ${x.spec.node || '?'}` : 'reserved, no pod yet'} since ${x.spec.claimedAt}`]);
      }
    } else rows.push(['claims', 'none yet (claimed when the pod is created on a node)']);
    return `${who}\n${rows.map(([k, v]) => `  ${k.padEnd(16)} ${v}`).join('\n')}\n`;
  });
  return EXIT.ok;
}
