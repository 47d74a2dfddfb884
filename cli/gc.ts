/**
 * `kubectl sriov gc --report FILE` / `--release-from FILE`: the reconcile loop's rules, run by hand
 * in two steps. The report is the first observation (each stale claim with its resourceVersion and
 * why); the release, at least the grace period later, is the second: each entry is read again and
 * released only if its resourceVersion is unchanged, a fresh read of its pod (and StatefulSet) still
 * says it is stale, and with that resourceVersion as the precondition.
 */
import * as fs from 'node:fs';
import * as z from 'zod/mini';
import type { IPClaim } from '../src/ipam/claims';
import { releaseClaim } from '../src/ipam/pool-release';
import { ClusterReader, finding, type Finding } from '../src/ipam/reconcile';
import { DEFAULT_GRACE_FLOOR_SECONDS, judgeClaim } from '../src/ipam/reconcile-rules';
import { isConflict, isNotFound } from '../src/kube/client';
import { RegistrationIndex } from '../src/registrations/index';
import { describeIssues } from '../src/schemas/format';
import { commandArgs, commonFlags, helpText, type FlagSpec } from './args';
import { api, clusterConfigMaps, connect, type Cluster } from './cluster';
import { CliError, EXIT } from './errors';
import { emit, progress, table } from './output';

const REPORT_VERSION = 'sriov-underlay.io/gc-report/v1';

const findingSchema = z.object({
  claim: z.string().check(z.minLength(1)),
  ip: z.string(),
  network: z.string(),
  kind: z.string(),
  pod: z.object({ namespace: z.string(), name: z.string(), uid: z.string() }),
  node: z.string(),
  resourceVersion: z.string().check(z.minLength(1)),
  reason: z.string(),
  action: z.enum(['release', 'expire']),
});
const reportSchema = z.object({
  apiVersion: z.literal(REPORT_VERSION),
  generatedAt: z.iso.datetime(),
  findings: z.array(findingSchema),
});
type Report = z.infer<typeof reportSchema>;

const FLAGS: FlagSpec[] = [
  { name: 'report', value: true, help: 'write the stale claims, with reasons, to FILE (changes nothing)' },
  { name: 'release-from', value: true, help: 'release the claims listed in FILE that are still stale now' },
  { name: 'grace-seconds', value: true, help: `minimum age of the report before a release (default ${DEFAULT_GRACE_FLOOR_SECONDS})` },
];
const flagsSchema = z.object({
  ...commonFlags,
  report: z.optional(z.string().check(z.minLength(1))),
  'release-from': z.optional(z.string().check(z.minLength(1))),
  'grace-seconds': z._default(z.pipe(z.string().check(z.regex(/^\d{1,7}$/, 'must be a whole number of seconds')), z.transform(Number)), DEFAULT_GRACE_FLOOR_SECONDS),
});

export const GC_HELP = helpText(
  'kubectl sriov gc (--report FILE | --release-from FILE) [-o table|json|yaml]',
  'Find leaked IP claims: claims whose pod UID is gone (and, for StatefulSet pods, whose ordinal is\n' +
    'above the replicas), and tombstones past their cooldown and retention. --report writes them to\n' +
    'FILE and changes nothing. --release-from FILE, run at least the grace period later, re-reads each\n' +
    'one and releases only those still stale and unchanged (resourceVersion precondition).\n' +
    'Exit 1 if a release failed for another reason than "no longer stale".',
  FLAGS,
);

async function networkCooldowns(c: Cluster): Promise<Map<string, number>> {
  const index = new RegistrationIndex();
  index.replaceAll(await clusterConfigMaps(c));
  return new Map(index.networks().map((n) => [n.name, n.spec.cooldownSeconds]));
}

export async function gcCommand(argv: string[]): Promise<number> {
  const args = commandArgs('gc', argv, FLAGS, flagsSchema, GC_HELP);
  if (!args) return EXIT.ok;
  const { flags } = args;
  if (!flags.report === !flags['release-from']) throw new CliError(EXIT.usage, 'gc: give exactly one of --report FILE and --release-from FILE');
  const prog = progress('gc', flags.progress);
  const c = connect(flags.kubeconfig);
  const reader = new ClusterReader(c.clients.core, c.apps);
  const cooldowns = await networkCooldowns(c);
  const nodes = await api('list nodes', () => reader.liveNodes());
  if (flags.report) return report(c, reader, nodes, cooldowns, flags.report, flags.output, prog);
  return release(c, reader, nodes, cooldowns, flags['release-from']!, flags['grace-seconds'], flags.output, prog);
}

async function report(
  c: Cluster,
  reader: ClusterReader,
  nodes: Set<string>,
  cooldowns: Map<string, number>,
  file: string,
  output: 'table' | 'json' | 'yaml',
  prog: ReturnType<typeof progress>,
): Promise<number> {
  const claims = (await api('list IPClaims', () => c.claims.list())).items;
  const findings: Finding[] = [];
  let n = 0;
  for (const claim of claims) {
    if (++n % 100 === 0) prog.step(`checked ${n}/${claims.length} claims`);
    const facts = await api(`read the pod of ${claim.metadata?.name}`, () => reader.facts(claim, nodes, Date.now()));
    const v = judgeClaim(claim, { ...facts, cooldownSeconds: cooldowns.get(claim.spec.network) });
    if (v.action !== 'keep') findings.push(finding(claim, v));
  }
  const doc: Report = { apiVersion: REPORT_VERSION, generatedAt: new Date().toISOString(), findings: findings.map(strip) };
  try {
    fs.writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  } catch (e) {
    throw new CliError(EXIT.input, `gc: cannot write the report ${file}: ${(e as Error).message}`);
  }
  prog.step(`checked ${claims.length} claims: ${findings.length} stale, written to ${file}`);
  emit(output, doc, () =>
    (findings.length ? table(['CLAIM', 'IP', 'POD', 'NODE', 'ACTION', 'REASON'], findings.map((f) => [f.claim, f.ip, `${f.pod.namespace}/${f.pod.name}`, f.node || '-', f.action, f.reason])) : '') +
    `${findings.length} of ${claims.length} claims are stale; report written to ${file}. Release with: kubectl sriov gc --release-from ${file} (after the grace period)\n`,
  );
  return EXIT.ok;
}

function strip(f: Finding): Report['findings'][number] {
  return { claim: f.claim, ip: f.ip, network: f.network, kind: f.kind, pod: f.pod, node: f.node, resourceVersion: f.resourceVersion, reason: f.reason, action: f.action };
}

function readReport(file: string): Report {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CliError(EXIT.input, `gc: ${file} is not a readable JSON report: ${(e as Error).message}`);
  }
  const r = reportSchema.safeParse(raw);
  if (!r.success) throw new CliError(EXIT.input, describeIssues(`gc report ${file}`, r.error.issues));
  return r.data;
}

async function release(
  c: Cluster,
  reader: ClusterReader,
  nodes: Set<string>,
  cooldowns: Map<string, number>,
  file: string,
  graceSeconds: number,
  output: 'table' | 'json' | 'yaml',
  prog: ReturnType<typeof progress>,
): Promise<number> {
  const rep = readReport(file);
  const age = (Date.now() - Date.parse(rep.generatedAt)) / 1000;
  const results: Array<{ claim: string; ip: string; pod: string; result: 'released' | 'skipped' | 'failed'; why: string }> = [];
  let n = 0;
  for (const f of rep.findings) {
    if (++n % 50 === 0) prog.step(`${n}/${rep.findings.length} entries`);
    const row = { claim: f.claim, ip: f.ip, pod: `${f.pod.namespace}/${f.pod.name}` };
    if (age < graceSeconds) {
      results.push({ ...row, result: 'skipped', why: `the report is ${Math.floor(age)} s old; the claim must stay stale for ${graceSeconds} s: run again later` });
      continue;
    }
    let cur: IPClaim | undefined;
    try {
      cur = await c.claims.get(f.claim);
    } catch (e) {
      results.push({ ...row, result: 'failed', why: `read failed: ${(e as Error).message}` });
      continue;
    }
    if (!cur) {
      results.push({ ...row, result: 'skipped', why: 'already gone' });
      continue;
    }
    if (cur.metadata?.resourceVersion !== f.resourceVersion) {
      results.push({ ...row, result: 'skipped', why: `changed since the report (resourceVersion ${f.resourceVersion} → ${cur.metadata?.resourceVersion})` });
      continue;
    }
    const facts = await api(`read the pod of ${f.claim}`, () => reader.facts(cur, nodes, Date.now()));
    const v = judgeClaim(cur, { ...facts, cooldownSeconds: cooldowns.get(cur.spec.network) });
    if (v.action === 'keep') {
      results.push({ ...row, result: 'skipped', why: `no longer stale: ${v.reason}` });
      continue;
    }
    try {
      if (v.action === 'expire') await c.claims.delete(f.claim, { uid: cur.metadata?.uid, resourceVersion: f.resourceVersion });
      else await releaseClaim(c.claims, cur, new Date());
      results.push({ ...row, result: 'released', why: v.reason });
    } catch (e) {
      if (isConflict(e) || isNotFound(e)) results.push({ ...row, result: 'skipped', why: 'changed while releasing (precondition failed)' });
      else results.push({ ...row, result: 'failed', why: (e as Error).message });
    }
  }
  const failed = results.filter((r) => r.result === 'failed').length;
  const released = results.filter((r) => r.result === 'released').length;
  emit(output, { released, skipped: results.length - released - failed, failed, results }, () =>
    (results.length ? table(['CLAIM', 'IP', 'POD', 'RESULT', 'WHY'], results.map((r) => [r.claim, r.ip, r.pod, r.result, r.why])) : '') +
    `${released} released, ${results.length - released - failed} skipped, ${failed} failed\n`,
  );
  return failed ? EXIT.problems : EXIT.ok;
}
