// kubectl-sriov as a subprocess against the fake apiserver, through an ordinary kubeconfig.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import * as esbuild from 'esbuild';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeStatePublisher } from '../../../node/agent/node-state';
import { claimIp } from '../../../src/ipam/claims';
import { ClusterObjects, SRIOV_NODE_STATES } from '../../../src/kube/client';
import type { SriovNodeState } from '../../../src/schemas/node-state';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { claimEnv, createPod, ensureNamespace, type ClaimEnv } from '../ipam/helpers';

const REPO = path.resolve(__dirname, '../../..');
let bundle: string;
let fake: FakeKube;
let env: ClaimEnv;
let tmp: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bundle, ...args], { env: { PATH: process.env.PATH ?? '', HOME: tmp } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
const kc = () => ['--kubeconfig', fake.kubeconfigPath];

const NETWORKS = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'networks', namespace: 'sriov-underlay', labels: { 'sriov-underlay.io/kind': 'network' } },
  data: {
    vlan100: stringify({ vlan: 100, subnet: '10.100.0.0/24', gateway: '10.100.0.1', resourceName: 'sriov-underlay.io/pool-a', ranges: ['10.100.0.100-10.100.0.102'] }),
    vlan200: stringify({ vlan: 200, subnet: '10.200.0.0/24', gateway: '10.200.0.1', resourceName: 'sriov-underlay.io/pool-b' }),
  },
};
const regs = (name: string, data: Record<string, object>) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'demo', labels: { 'sriov-underlay.io/kind': 'registration' } },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, stringify(v)])),
});
const GOOD = regs('demo-net', {
  'app-a': { network: 'vlan100', ip: '10.100.0.11', qos: { maxTxRateMbps: 300 } },
  mysql: { network: 'vlan100', ips: ['10.100.0.21', '10.100.0.22'] },
  cache: { pool: 'vlan100', reserve: true },
});

function writeYaml(name: string, docs: object[]): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, docs.map((d) => stringify(d)).join('---\n'));
  return p;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipcli-'));
  fs.mkdirSync(path.join(REPO, 'dist', '.test'), { recursive: true });
  bundle = path.join(REPO, 'dist', '.test', `kubectl-sriov-${process.pid}.cjs`);
  await esbuild.build({ entryPoints: [path.join(REPO, 'cli/main.ts')], bundle: true, platform: 'node', packages: 'external', outfile: bundle, logLevel: 'warning' });
  fake = await startFakeKube({ validators: crdValidators() });
  env = claimEnv(fake);
  for (const ns of ['sriov-underlay', 'demo']) await ensureNamespace(env.clients.core, ns);
  const core = env.clients.core;
  await core.createNamespacedConfigMap({ namespace: 'sriov-underlay', body: NETWORKS as k8s.V1ConfigMap });
  await core.createNamespacedConfigMap({ namespace: 'demo', body: GOOD as k8s.V1ConfigMap });
  await core.createNamespacedConfigMap({ namespace: 'demo', body: regs('broken', { 'app-x': { network: 'vlan100', ip: '10.100.0.255' } }) as k8s.V1ConfigMap });
  for (const n of ['node-a', 'node-b']) await core.createNode({ body: { metadata: { name: n } } });
});
afterAll(async () => {
  await fake?.close();
  if (bundle) fs.rmSync(bundle, { force: true });
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('kubectl-sriov: command line', () => {
  it('--help on every subcommand, exit 0; unknown command, unknown flag and bad values are usage errors (2)', async () => {
    for (const sub of ['validate', 'explain', 'allocations', 'nodes', 'gc']) {
      const r = await cli(sub, '--help');
      expect(r.code, sub).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: kubectl sriov ${sub}`));
    }
    expect((await cli('--help')).code).toBe(0);
    const unknown = await cli('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    const flag = await cli('nodes', '--colour');
    expect([flag.code, flag.stderr]).toEqual([2, 'error: nodes: unknown flag --colour (see nodes --help)\n']);
    const out = await cli('allocations', '-o', 'xml', ...kc());
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/allocations: flag --output: .*"table"\|"json"\|"yaml"/);
    const ns = await cli('allocations', '-n', 'Bad_NS', ...kc());
    expect(ns.code).toBe(2);
    expect(ns.stderr).toMatch(/flag --namespace: must be a lowercase DNS name/);
    expect((await cli('gc', ...kc())).stderr).toContain('give exactly one of --report FILE and --release-from FILE');
  });

  it('an unreachable API server is exit 5 naming it', async () => {
    const dead = path.join(tmp, 'dead.kubeconfig');
    fs.writeFileSync(dead, fs.readFileSync(fake.kubeconfigPath, 'utf8').replace(fake.url, 'http://127.0.0.1:1'));
    const r = await cli('allocations', '--kubeconfig', dead);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/list IPClaims: Kubernetes API unreachable/);
  });
});

describe('kubectl-sriov validate', () => {
  it('passes the good files, prints the pool plan, exit 0', async () => {
    const f = writeYaml('good.yaml', [NETWORKS, GOOD]);
    const r = await cli('validate', '-f', f, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { ok: boolean; errors: number; pools: { network: string; size: number; poolRegistrations: number; left: number }[] };
    expect(j.ok).toBe(true);
    expect(j.pools).toEqual([expect.objectContaining({ network: 'vlan100', size: 3, poolRegistrations: 1, left: 2 })]);
  });

  it('the configmaps/ examples validate clean', async () => {
    const r = await cli('validate', '-f', path.join(REPO, 'configmaps/networks.yaml'), '-f', path.join(REPO, 'configmaps/registrations.yaml'), '-o', 'json');
    expect(r.code, r.stdout).toBe(0);
    expect((JSON.parse(r.stdout) as { findings: unknown[] }).findings).toEqual([]);
  });

  it('reports every kind of error with ConfigMap, key and field, and exits 1', async () => {
    const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'mysql', namespace: 'demo' }, spec: { replicas: 3 } };
    const state = { apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'SriovNodeState', metadata: { name: 'node-a' }, status: { updatedAt: '2026-01-01T00:00:00Z', pools: [{ resourceName: 'sriov-underlay.io/pool-a', capacity: 8, allocatable: 8, allocated: 0, unhealthy: 0, pfs: [{ name: 'ens1f0', linkSpeedMbps: 10000 }] }] } };
    const bad1 = regs('team-a', {
      app: { network: 'vlan100', ip: '10.100.0.50' },
      dup: { network: 'vlan100', ip: '10.100.0.50' },
      bcast: { network: 'vlan100', ip: '10.100.0.255' },
      gw: { network: 'vlan100', ip: '10.100.0.1' },
      outside: { network: 'vlan100', ip: '10.101.0.5' },
      vlan: { network: 'vlan100', ip: '10.100.0.60', vlan: 200 },
      fast: { network: 'vlan100', ip: '10.100.0.61', qos: { maxTxRateMbps: 25000 } },
      p1: { pool: 'vlan100' }, p2: { pool: 'vlan100' }, p3: { pool: 'vlan100' }, p4: { pool: 'vlan100' },
    });
    const bad2 = { ...regs('team-b', { other: { network: 'vlan100', ip: '10.100.0.50' } }), metadata: { ...regs('team-b', {}).metadata, creationTimestamp: '2030-01-01T00:00:00Z' } };
    const f = writeYaml('bad.yaml', [NETWORKS, bad1, bad2, GOOD, sts, state]);
    const r = await cli('validate', '-f', f, '-o', 'json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as { ok: boolean; findings: { severity: string; check: string; configMap?: string; key?: string; field?: string; message: string }[] };
    const errs = j.findings.filter((x) => x.severity === 'error');
    const by = (key: string) => errs.find((x) => x.key === key);
    expect(by('dup')).toMatchObject({ check: 'duplicate-ip', configMap: 'demo/team-a', field: 'ip' });
    expect(by('dup')!.message).toContain('already registered by configmap demo/team-a key "app"');
    expect(by('other')).toMatchObject({ check: 'duplicate-ip', configMap: 'demo/team-b' });
    expect(by('bcast')!.message).toContain('is the broadcast address');
    expect(by('gw')!.message).toContain('is the gateway of network "vlan100"');
    expect(by('outside')!.message).toContain('is not inside the subnet 10.100.0.0/24');
    expect(by('vlan')).toMatchObject({ field: 'vlan' });
    expect(by('fast')).toMatchObject({ check: 'qos-above-link-speed', field: 'qos.maxTxRateMbps' });
    expect(by('fast')!.message).toContain('25000 Mbps is above the link speed of PF ens1f0 on node node-a (10000 Mbps)');
    expect(by('mysql')).toMatchObject({ check: 'statefulset-ips-short', field: 'ips' });
    expect(by('vlan100')).toMatchObject({ check: 'pool-exhausted', field: 'ranges' });
    expect(by('vlan100')!.message).toMatch(/3 addresses, 0 registered as fixed, 5 pool registrations: 2 short/);
    // The human table says the same and ends with the count.
    const t = await cli('validate', '-f', f);
    expect(t.code).toBe(1);
    expect(t.stdout).toMatch(/error\s+duplicate-ip\s+demo\/team-a\s+dup\s+ip/);
    expect(t.stdout).toMatch(/\d+ error\(s\), \d+ warning\(s\) in 4 ConfigMap\(s\)\n$/);
  });

  it('an unreadable file is exit 4, malformed YAML too, naming the file', async () => {
    const missing = await cli('validate', '-f', path.join(tmp, 'nope.yaml'));
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('nope.yaml: cannot be read');
    const p = path.join(tmp, 'mal.yaml');
    fs.writeFileSync(p, 'kind: ConfigMap\nmetadata: {name: x\n');
    const mal = await cli('validate', '-f', p);
    expect(mal.code).toBe(4);
    expect(mal.stderr).toContain('mal.yaml document 1: not valid YAML');
  });

  it('--cluster checks what is live; -f overlays a fix onto it; --progress reports on stderr', async () => {
    const live = await cli('validate', '--cluster', ...kc(), '-o', 'json', '--progress');
    expect(live.code).toBe(1);
    const j = JSON.parse(live.stdout) as { findings: { key?: string; configMap?: string }[] };
    expect(j.findings.map((x) => `${x.configMap}:${x.key}`)).toContain('demo/broken:app-x');
    expect(live.stderr).toMatch(/validate: read \d+ ConfigMaps from the cluster/);
    const fix = writeYaml('fix.yaml', [regs('broken', { 'app-x': { network: 'vlan100', ip: '10.100.0.77' } })]);
    const fixed = await cli('validate', '--cluster', '-f', fix, ...kc());
    expect(fixed.code, fixed.stdout).toBe(0);
  });
});

describe('kubectl-sriov explain, allocations, nodes', () => {
  it('explain: settings and source key@resourceVersion (0), rejection (1), unregistered (3)', async () => {
    const cm = await env.clients.core.readNamespacedConfigMap({ namespace: 'demo', name: 'demo-net' });
    const r = await cli('explain', 'mysql-1', '-n', 'demo', ...kc());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`configmap demo/demo-net key "mysql" @ resourceVersion ${cm.metadata!.resourceVersion}`);
    expect(r.stdout).toMatch(/addresses\s+10\.100\.0\.22\/24/);
    const rej = await cli('explain', 'app-x', '-n', 'demo', ...kc());
    expect(rej.code).toBe(1);
    expect(rej.stdout).toContain('configmap demo/broken key "app-x": field "ip": 10.100.0.255 is the broadcast address');
    const none = await cli('explain', 'ghost', '-n', 'demo', ...kc(), '-o', 'json');
    expect(none.code).toBe(3);
    expect(JSON.parse(none.stdout)).toEqual({ pod: 'demo/ghost', registered: false });
  });

  it('explain shows a reservation made before the pod exists', async () => {
    await claimIp(env.deps, {
      network: 'vlan100', ip: '10.100.0.101', kind: 'reserved', pod: { namespace: 'demo', name: 'cache', uid: '' }, node: '', containerID: '', interface: '',
      source: { namespace: 'demo', configMap: 'demo-net', key: 'cache', resourceVersion: '1' },
    });
    const r = await cli('explain', 'cache', '-n', 'demo', ...kc());
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/addresses\s+10\.100\.0\.101 \(from pool vlan100, reserved before the pod\)/);
  });

  it('allocations lists claims with filters by namespace, network and node', async () => {
    const uid = await createPod(env.clients.core, 'demo', 'app-a', 'node-a');
    await claimIp(env.deps, {
      network: 'vlan100', ip: '10.100.0.11', kind: 'fixed', pod: { namespace: 'demo', name: 'app-a', uid }, node: 'node-a', containerID: 'c1', interface: 'net1', vf: '0000:81:10.1',
      source: { namespace: 'demo', configMap: 'demo-net', key: 'app-a', resourceVersion: '1' },
    });
    const all = await cli('allocations', ...kc());
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^IP\s+NETWORK\s+POD\s+NODE\s+VF\s+KIND\s+STATE\s+SINCE/);
    expect(all.stdout).toMatch(/10\.100\.0\.11\s+vlan100\s+demo\/app-a\s+node-a\s+0000:81:10\.1\s+fixed\s+in use/);
    const byNode = JSON.parse((await cli('allocations', '--node', 'node-a', '-o', 'json', ...kc())).stdout) as { items: { ip: string }[] };
    expect(byNode.items.map((i) => i.ip)).toEqual(['10.100.0.11']);
    const none = JSON.parse((await cli('allocations', '--network', 'vlan200', '-o', 'json', ...kc())).stdout) as { items: unknown[] };
    expect(none.items).toEqual([]);
    const yaml = await cli('allocations', '-n', 'demo', '-o', 'yaml', ...kc());
    expect(yaml.stdout).toMatch(/items:\n {2}- ip: 10\.100\.0\.11\n[^]*\n {2}- ip: 10\.100\.0\.101\n/);
  });

  it('nodes shows what the agents published', async () => {
    const states = new ClusterObjects<SriovNodeState>(env.clients.custom, SRIOV_NODE_STATES);
    const pub = new NodeStatePublisher(states, 'node-a');
    await pub.update([{ resourceName: 'sriov-underlay.io/pool-a', capacity: 8, allocatable: 7, allocated: 3, unhealthy: 1, pfs: [{ name: 'ens1f0', linkSpeedMbps: 25000 }] }]);
    await pub.update([{ resourceName: 'sriov-underlay.io/pool-a', capacity: 8, allocatable: 7, allocated: 4, unhealthy: 1, pfs: [{ name: 'ens1f0', linkSpeedMbps: 25000 }] }]);
    expect(pub.writes).toBe(2);
    const r = await cli('nodes', ...kc());
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/node-a\s+sriov-underlay\.io\/pool-a\s+8\s+7\s+4\s+1\s+ens1f0@25000Mb\/s/);
  });

  it('nodes shows the node policy per PF: actual vs desired, Blocked with the pods, rejected entries', async () => {
    const states = new ClusterObjects<SriovNodeState>(env.clients.custom, SRIOV_NODE_STATES);
    const pub = new NodeStatePublisher(states, 'node-p');
    const actual = { totalVfs: 8, numVfs: 6, mtu: 9000, linkUp: true, speedMbps: 25000, vfDrivers: ['igbvf', 'igbvf', 'igbvf', 'igbvf', 'vfio-pci', 'vfio-pci'] };
    await pub.update([]);
    await pub.updatePolicy({
      source: 'ConfigMap sriov-underlay/node-policy key "policy.yaml"', appliedAt: new Date().toISOString(),
      rejected: ['ConfigMap sriov-underlay/node-policy key "policy.yaml": entry "ghost": field "pfNames": no SR-IOV PF "ens9" on this node'],
      pfs: [{
        name: 'ens1f0', pciAddr: '0000:81:00.0', entries: ['fabric'], externallyManaged: false,
        desired: { numVfs: 2, mtu: 9000, vfDrivers: [] }, actual,
        conditions: [
          { type: 'Applied', status: 'False', reason: 'Held', message: 'x' },
          { type: 'Blocked', status: 'True', reason: 'VFsInUse', message: 'sriov_numvfs 6 -> 2 held: VF 0000:81:10.2 in use by pod db/mysql-0', pods: ['pod db/mysql-0'] },
        ],
      }],
    });
    const r = await cli('nodes', ...kc());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/NODE\s+PF\s+VFS\s+MTU\s+LINK\s+VF DRIVERS\s+STATE\s+MESSAGE/);
    expect(r.stdout).toMatch(/node-p\s+ens1f0 \(0000:81:00\.0\)\s+6\/8 \(want 2\/8\)\s+9000\s+up\s+4xigbvf,2xvfio-pci\s+Blocked\s+sriov_numvfs 6 -> 2 held: VF 0000:81:10\.2 in use by pod db\/mysql-0/);
    expect(r.stdout).toContain('warning: node node-p: policy rejected: ConfigMap sriov-underlay/node-policy key "policy.yaml": entry "ghost"');
    const json = JSON.parse((await cli('nodes', '-o', 'json', ...kc())).stdout) as { policy: Array<{ node: string; conditions: Array<{ pods?: string[] }> }> };
    expect(json.policy.find((p) => p.node === 'node-p')?.conditions[1]?.pods).toEqual(['pod db/mysql-0']);
  });
});

describe('kubectl-sriov gc', () => {
  it('report first, then release only what is still stale and unchanged', async () => {
    const core = env.clients.core;
    const mk = async (name: string, ip: string) => {
      const uid = await createPod(core, 'demo', name, 'node-b');
      await claimIp(env.deps, {
        network: 'vlan200', ip, kind: 'fixed', pod: { namespace: 'demo', name, uid }, node: 'node-b', containerID: `c-${name}`, interface: 'net1',
        source: { namespace: 'demo', configMap: 'x', key: name, resourceVersion: '1' },
      });
      return uid;
    };
    await mk('gone', '10.200.0.10');
    await mk('back', '10.200.0.11');
    await mk('moved', '10.200.0.12');
    await mk('alive', '10.200.0.13');
    for (const n of ['gone', 'back', 'moved']) fake.server.remove('pods', 'demo', n);
    const report = path.join(tmp, 'gc.json');
    const r = await cli('gc', '--report', report, ...kc());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 of \d+ claims are stale/);
    const doc = JSON.parse(fs.readFileSync(report, 'utf8')) as { findings: { ip: string; reason: string }[] };
    expect(doc.findings.map((f) => f.ip).sort()).toEqual(['10.200.0.10', '10.200.0.11', '10.200.0.12']);
    expect(doc.findings[0]!.reason).toMatch(/pod demo\/\w+ uid .* is gone/);

    // Too early: nothing is released.
    const early = await cli('gc', '--release-from', report, '-o', 'json', ...kc());
    expect(JSON.parse(early.stdout)).toMatchObject({ released: 0, skipped: 3, failed: 0 });

    // Meanwhile: "back" returns under its name with its old claim taken over; "moved"'s claim changes.
    const backUid = await createPod(core, 'demo', 'back', 'node-b');
    await claimIp(env.deps, {
      network: 'vlan200', ip: '10.200.0.11', kind: 'fixed', pod: { namespace: 'demo', name: 'back', uid: backUid }, node: 'node-b', containerID: 'c-back2', interface: 'net1',
      source: { namespace: 'demo', configMap: 'x', key: 'back', resourceVersion: '1' },
    });
    const movedName = doc.findings.find((f) => f.ip === '10.200.0.12') as unknown as { claim: string };
    await env.claims.mergePatch(movedName.claim, { metadata: { annotations: { touched: 'yes' } } });
    fake.server.resetCounters();
    const rel = await cli('gc', '--release-from', report, '--grace-seconds', '0', '-o', 'json', ...kc());
    expect(rel.code, rel.stderr).toBe(0);
    const res = JSON.parse(rel.stdout) as { released: number; results: { ip: string; result: string; why: string }[] };
    const of = (ip: string) => res.results.find((x) => x.ip === ip)!;
    expect(of('10.200.0.10')).toMatchObject({ result: 'released' });
    expect(of('10.200.0.11').result).toBe('skipped');
    expect(of('10.200.0.11').why).toMatch(/changed since the report|no longer stale/);
    expect(of('10.200.0.12').why).toMatch(/changed since the report/);
    expect(res.released).toBe(1);
    expect(fake.server.counters().writesByResource.ipclaims).toEqual({ delete: 1 });
    const left = (await env.claims.list()).items.map((c) => c.spec.ip);
    expect(left).not.toContain('10.200.0.10');
    expect(left).toEqual(expect.arrayContaining(['10.200.0.11', '10.200.0.12', '10.200.0.13']));
  });

  it('a malformed report is exit 4 naming the field', async () => {
    const p = path.join(tmp, 'badreport.json');
    fs.writeFileSync(p, JSON.stringify({ apiVersion: 'sriov-underlay.io/gc-report/v1', generatedAt: 'yesterday', findings: [] }));
    const r = await cli('gc', '--release-from', p, ...kc());
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/gc report .*badreport\.json: field "generatedAt"/);
  });
});

