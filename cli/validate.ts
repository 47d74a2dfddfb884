/**
 * `kubectl sriov validate -f FILE... | --cluster`: a dry-run plan of networks and registrations.
 * Files overlay the cluster when both are given (a ConfigMap in a file replaces the cluster's
 * ConfigMap of the same namespace/name), which is how a change pipeline checks a change against
 * what is live. Exit 1 on any error.
 */
import type * as k8s from '@kubernetes/client-node';
import { formatIp, parseIp, rangeContains, totalSize, type Family } from '../src/ipam/cidr';
import type { IPClaim } from '../src/ipam/claims';
import { fixedAddressesByNetwork } from '../src/ipam/pool-allocator';
import { reusableAt } from '../src/ipam/pool-release';
import { RegistrationIndex } from '../src/registrations/index';
import { keyLabel } from '../src/registrations/parse';
import type { ConfigMapObject, Rejection } from '../src/registrations/types';
import { nodeStateStatusSchema, type SriovNodeState } from '../src/schemas/node-state';
import { commandArgs, commonFlags, helpText, type FlagSpec } from './args';
import { api, clusterConfigMaps, connect, readObjectFiles } from './cluster';
import { CliError, EXIT } from './errors';
import { emit, progress, table } from './output';
import * as z from 'zod/mini';

export interface Finding {
  severity: 'error' | 'warning';
  check: 'invalid' | 'duplicate-ip' | 'shadowed' | 'qos-above-link-speed' | 'statefulset-ips-short' | 'pool-exhausted' | 'pool-full' | 'fixed-in-pool' | 'open-network';
  configMap?: string;
  key?: string;
  field?: string;
  message: string;
}

export interface PoolPlan {
  network: string;
  family: Family;
  size: number;
  /** Addresses registered as fixed that lie inside the ranges (the pool skips them). */
  fixedInRanges: number;
  /** Pool registrations that will each take one address of this family. */
  poolRegistrations: number;
  /** From the cluster: in use now and cooling down (only with --cluster). */
  claimed?: number;
  coolingDown?: number;
  left: number;
}

export interface PlanInput {
  configMaps: ConfigMapObject[];
  statefulSetReplicas: Map<string, number>;
  nodeStates: SriovNodeState[];
  claims?: IPClaim[];
  nowMs: number;
}

const REASON_CHECK: Record<Rejection['reason'], Finding['check']> = { invalid: 'invalid', conflict: 'duplicate-ip', shadowed: 'shadowed' };

export function plan(input: PlanInput): { findings: Finding[]; pools: PoolPlan[] } {
  const index = new RegistrationIndex();
  index.replaceAll(input.configMaps);
  const findings: Finding[] = index.allRejections().map((r) => ({
    severity: 'error',
    check: REASON_CHECK[r.reason],
    configMap: `${r.namespace}/${r.configMap}`,
    key: r.key,
    field: r.field,
    message: r.message,
  }));

  // PF link speeds per VF pool (the slowest PF that serves it), from the agents' SriovNodeStates.
  const speeds = new Map<string, { mbps: number; where: string }>();
  for (const ns of input.nodeStates) {
    const st = nodeStateStatusSchema.safeParse(ns.status);
    if (!st.success) continue;
    for (const p of st.data.pools) {
      for (const pf of p.pfs) {
        if (!pf.linkSpeedMbps) continue;
        const cur = speeds.get(p.resourceName);
        if (!cur || pf.linkSpeedMbps < cur.mbps) speeds.set(p.resourceName, { mbps: pf.linkSpeedMbps, where: `PF ${pf.name} on node ${ns.metadata?.name}` });
      }
    }
  }

  const fixed = fixedAddressesByNetwork(index.registrations());
  const poolUsers = new Map<string, number>();
  for (const r of index.registrations()) {
    const label = keyLabel(r.meta, r.key);
    const pod = r.form === 'sts' ? `${r.key}-0` : r.key;
    const res = index.lookup(r.meta.namespace, pod, r.network);
    if (res.kind !== 'resolved') continue;
    const s = res.settings;
    if (r.spec.pool) poolUsers.set(s.network, (poolUsers.get(s.network) ?? 0) + 1);
    const speed = speeds.get(s.resourceName);
    for (const [field, rate] of [['qos.maxTxRateMbps', s.maxTxRateMbps], ['qos.minTxRateMbps', s.minTxRateMbps]] as const) {
      if (speed && rate && rate > speed.mbps) {
        findings.push({
          severity: 'error', check: 'qos-above-link-speed', configMap: `${r.meta.namespace}/${r.meta.name}`, key: r.key, field,
          message: `${label}: field "${field}": ${rate} Mbps is above the link speed of ${speed.where} (${speed.mbps} Mbps) serving ${s.resourceName}`,
        });
      }
    }
    if (r.form === 'sts') {
      const replicas = input.statefulSetReplicas.get(`${r.meta.namespace}/${r.key}`);
      for (const f of ['ips', 'ips6'] as const) {
        const list = r.spec[f];
        if (list && replicas !== undefined && list.length < replicas) {
          findings.push({
            severity: 'error', check: 'statefulset-ips-short', configMap: `${r.meta.namespace}/${r.meta.name}`, key: r.key, field: f,
            message: `${label}: field "${f}": lists ${list.length} addresses but StatefulSet ${r.meta.namespace}/${r.key} has ${replicas} replicas`,
          });
        }
      }
    }
  }

  // A network without allowedNamespaces is open to every namespace (what it meant before the field).
  for (const net of index.networks()) {
    if (net.allowedNamespaces) continue;
    findings.push({
      severity: 'warning', check: 'open-network', configMap: `${net.meta.namespace}/${net.meta.name}`, key: net.name, field: 'allowedNamespaces',
      message: `configmap ${net.meta.namespace}/${net.meta.name} key "${net.name}": field "allowedNamespaces": absent, so registrations in every namespace may use this network; list the namespaces that may`,
    });
  }

  const pools: PoolPlan[] = [];
  for (const net of index.networks()) {
    if (!net.pool.length) continue;
    for (const fam of [...new Set(net.pool.map((r) => r.family))].sort()) {
      const ranges = net.pool.filter((r) => r.family === fam);
      const inRanges = (t: string) => {
        const ip = parseIp(t);
        return ranges.some((r) => rangeContains(r, ip));
      };
      const fixedIn = [...(fixed.get(net.name) ?? [])].filter(inRanges);
      const size = Number(totalSize(ranges));
      const users = poolUsers.get(net.name) ?? 0;
      const p: PoolPlan = { network: net.name, family: fam, size, fixedInRanges: fixedIn.length, poolRegistrations: users, left: size - fixedIn.length - users };
      if (input.claims) {
        let claimed = 0;
        let cooling = 0;
        for (const c of input.claims) {
          if (c.spec.network !== net.name || parseIp(c.spec.ip).family !== fam || !inRanges(c.spec.ip) || fixedIn.includes(c.spec.ip)) continue;
          const at = reusableAt(c, net.spec.cooldownSeconds);
          if (at === null) claimed++;
          else if (at > input.nowMs) cooling++;
        }
        p.claimed = claimed;
        p.coolingDown = cooling;
        // Claims by pods that are not (or no longer) registered still hold their addresses.
        p.left = Math.min(p.left, size - fixedIn.length - claimed - cooling);
      }
      pools.push(p);
      const where = `configmap ${net.meta.namespace}/${net.meta.name} key "${net.name}"`;
      if (p.left < 0) {
        findings.push({
          severity: 'error', check: 'pool-exhausted', configMap: `${net.meta.namespace}/${net.meta.name}`, key: net.name, field: 'ranges',
          message: `${where}: field "ranges": the IPv${fam} pool is exhausted: ${size} addresses, ${fixedIn.length} registered as fixed, ${users} pool registrations${p.claimed !== undefined ? `, ${p.claimed} claimed, ${p.coolingDown} cooling down` : ''}: ${-p.left} short`,
        });
      } else if (p.left === 0 && users > 0) {
        findings.push({ severity: 'warning', check: 'pool-full', configMap: `${net.meta.namespace}/${net.meta.name}`, key: net.name, field: 'ranges', message: `${where}: field "ranges": the IPv${fam} pool has no address left after all registrations` });
      }
      for (const t of fixedIn) {
        findings.push({
          severity: 'warning', check: 'fixed-in-pool', configMap: `${net.meta.namespace}/${net.meta.name}`, key: net.name, field: 'ranges',
          message: `${where}: fixed address ${formatIp(fam, parseIp(t).value)} is inside the pool's ranges; the pool skips it, but consider excluding it`,
        });
      }
    }
  }
  return { findings, pools };
}

const FLAGS: FlagSpec[] = [
  { name: 'filename', short: 'f', value: true, repeat: true, help: 'a YAML/JSON file of ConfigMaps (networks, registrations), StatefulSets, SriovNodeStates' },
  { name: 'cluster', help: 'validate what is in the cluster (with -f: the files overlay it)' },
  { name: 'namespace', short: 'n', value: true, help: 'namespace for file objects that name none (default: default)' },
];

const flagsSchema = z.object({
  ...commonFlags,
  filename: z.optional(z.array(z.string().check(z.minLength(1)))),
  cluster: z.optional(z.boolean()),
  namespace: z._default(z.string().check(z.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name')), 'default'),
});

export const VALIDATE_HELP = helpText(
  'kubectl sriov validate (-f FILE... | --cluster) [-o table|json|yaml]',
  'Dry-run plan: checks networks and registrations before they are applied. Reports duplicate IPs\n' +
    'within and across ConfigMaps, IPs outside the subnet or on the network/broadcast/gateway address,\n' +
    'VLAN mismatches, QoS above the PF link speed (from SriovNodeStates), StatefulSet ips: shorter\n' +
    'than replicas, and how many pool addresses are left. Exit 1 if anything is an error.',
  FLAGS,
);

export async function validateCommand(argv: string[]): Promise<number> {
  const args = commandArgs('validate', argv, FLAGS, flagsSchema, VALIDATE_HELP, { hint: 'files go after -f' });
  if (!args) return EXIT.ok;
  const { flags } = args;
  if (!flags.filename?.length && !flags.cluster) throw new CliError(EXIT.usage, 'validate: give -f FILE... or --cluster (or both)');
  const prog = progress('validate', flags.progress);
  const files = flags.filename?.length ? readObjectFiles(flags.filename, flags.namespace) : null;
  if (files) prog.step(`read ${files.configMaps.length} ConfigMaps from ${flags.filename!.length} file(s)`);
  const byId = new Map<string, ConfigMapObject>();
  const replicas = new Map<string, number>();
  const nodeStates: SriovNodeState[] = [];
  let claims: IPClaim[] | undefined;
  if (flags.cluster) {
    const c = connect(flags.kubeconfig);
    for (const cm of await clusterConfigMaps(c)) byId.set(`${cm.metadata?.namespace}/${cm.metadata?.name}`, cm);
    prog.step(`read ${byId.size} ConfigMaps from the cluster`);
    const sts = await api('list StatefulSets', () => c.apps.listStatefulSetForAllNamespaces());
    for (const s of sts.items) replicas.set(`${s.metadata?.namespace}/${s.metadata?.name}`, s.spec?.replicas ?? 1);
    nodeStates.push(...(await api('list SriovNodeStates', () => c.nodeStates.list())).items);
    claims = (await api('list IPClaims', () => c.claims.list())).items;
    prog.step(`read ${sts.items.length} StatefulSets, ${nodeStates.length} SriovNodeStates, ${claims.length} IPClaims`);
  }
  if (files) {
    for (const cm of files.configMaps) byId.set(`${cm.metadata?.namespace}/${cm.metadata?.name}`, cm);
    for (const s of files.statefulSets as k8s.V1StatefulSet[]) replicas.set(`${s.metadata?.namespace}/${s.metadata?.name}`, s.spec?.replicas ?? 1);
    nodeStates.push(...files.nodeStates);
    for (const i of files.ignored) prog.step(`ignored ${i}`);
  }
  const input: PlanInput = { configMaps: [...byId.values()], statefulSetReplicas: replicas, nodeStates, nowMs: Date.now() };
  if (claims) input.claims = claims;
  const result = plan(input);
  prog.step(`checked ${byId.size} ConfigMaps`);
  const errors = result.findings.filter((f) => f.severity === 'error').length;
  const warnings = result.findings.length - errors;
  emit(flags.output, { ok: errors === 0, errors, warnings, findings: result.findings, pools: result.pools }, () => {
    const lines: string[] = [];
    if (result.findings.length) {
      lines.push(table(['SEVERITY', 'CHECK', 'CONFIGMAP', 'KEY', 'FIELD', 'MESSAGE'], result.findings.map((f) => [f.severity, f.check, f.configMap ?? '', f.key ?? '', f.field ?? '', f.message])));
    }
    if (result.pools.length) {
      const withCluster = result.pools.some((p) => p.claimed !== undefined);
      lines.push(
        table(
          ['NETWORK', 'FAMILY', 'SIZE', 'FIXED-IN-RANGES', 'POOL-REGISTRATIONS', ...(withCluster ? ['CLAIMED', 'COOLING'] : []), 'LEFT'],
          result.pools.map((p) => [p.network, `IPv${p.family}`, String(p.size), String(p.fixedInRanges), String(p.poolRegistrations), ...(withCluster ? [String(p.claimed), String(p.coolingDown)] : []), String(p.left)]),
        ),
      );
    }
    lines.push(`${errors} error(s), ${warnings} warning(s) in ${byId.size} ConfigMap(s)\n`);
    return lines.join('\n');
  });
  return errors ? EXIT.problems : EXIT.ok;
}
