/**
 * Upgrades and rollbacks with pods attached, on real netns and veth-backed emulated VFs: release
 * 0.1.0's CNI executable (built from its commit, test/fixtures/releases.ts) and this tree's replace
 * each other at the path the runtime executes while the pods run. Whatever one release attached,
 * the other detaches, and every VF comes home exactly as it was. A record of a newer format than
 * a release reads is refused by it, with the VF and the file left exactly as they were.
 *
 * This release installs the shim as `sriov-underlay` and the standalone CNI beside it. Its daemon's
 * CNI server is started at the upgrade (0.1.0's daemon had none) and stopped at the rollback, so
 * the upgrade's DELs and the rollback's ADDs go through the server (the log's servedBy says so),
 * and with no server the shim falls back (no-socket). A server of another protocol version is
 * test/host/cni-shim.test.ts's (fallback `version`).
 *
 * The node daemon takes no part here: these netconfs use no `agentSocket`, so the CNI alone reads
 * and writes the state. The daemon's one cross-release file, the release queue, is covered in
 * test/unit/state/formats.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CNI_PATH, REPO, requireBinary, runCni, runCniSync, type CniEnv } from '../fixtures/cni';
import { linkNames, linkSnapshot, makeNetns, uniqueTag, type LinkSnapshot, type NetnsHandle } from '../fixtures/host-net';
import { servedByInLog, startCniServer, type CniServer } from '../fixtures/cni-server-process';
import { releaseExecutable } from '../fixtures/releases';
import { createEmulatedNic, type EmulatedNic } from '../fixtures/sysfs-tree';
import { shapeOf } from '../fixtures/formats';

const PREVIOUS = '0.1.0';
const FORMATS_FIX = path.join(__dirname, '../fixtures/formats');

let nic: EmulatedNic;
let tmp: string;
/** The executables each release installs into the runtime's CNI dir. */
let previous: Record<string, string>;
let thisRelease: Record<string, string>;
const tag = uniqueTag('u');
const netnses: NetnsHandle[] = [];
const servers: CniServer[] = [];
let seq = 0;

const vfName = (i: number) => `${tag}p0v${i}`;

function pod(name: string): NetnsHandle {
  const ns = makeNetns(`${tag}-${name}`);
  netnses.push(ns);
  return ns;
}

/**
 * One node: a state dir, the path the runtime executes (`bin/sriov-underlay`, replaced by rename
 * as an installer does), and an IPAM plugin whose backend can be taken down (`ipamDown`).
 */
function node() {
  const dir = path.join(tmp, `n${seq++}`);
  const binDir = path.join(dir, 'bin');
  fs.mkdirSync(binDir, { recursive: true });
  const stateDir = path.join(dir, 'state');
  const logFile = path.join(dir, 'cni.log');
  const ipamLog = path.join(dir, 'ipam.log');
  const down = path.join(binDir, 'backend-down');
  // Static IPAM behind a backend that can fail DEL; every DEL it serves is logged. It reads its
  // config first, as every real plugin does: 0.1.0's DEL crashes (EPIPE, exit 1, no output) when a
  // plugin exits without reading stdin, a bug fixed since (cni/ipam.ts) but not in 0.1.0.
  fs.writeFileSync(
    path.join(binDir, 'flaky-ipam'),
    `#!/bin/sh\nconf=$(cat)\nif [ "$CNI_COMMAND" = DEL ]; then\n  if [ -e ${down} ]; then echo '{"cniVersion":"1.0.0","code":11,"msg":"IPAM backend down"}'; exit 1; fi\n  echo "DEL $CNI_CONTAINERID $CNI_IFNAME" >> ${ipamLog}\nfi\nprintf '%s' "$conf" | /usr/lib/cni/static\n`,
    { mode: 0o755 },
  );
  const exe = path.join(binDir, 'sriov-underlay');
  /** What an installer does: each file copied beside, then renamed over the one the runtime runs. */
  const install = (files: Record<string, string>) => {
    for (const [name, from] of Object.entries(files)) {
      const to = path.join(binDir, name);
      fs.copyFileSync(from, `${to}.new`);
      fs.chmodSync(`${to}.new`, 0o755);
      fs.renameSync(`${to}.new`, to);
    }
  };
  const conf = (vf: number, network: string, addr: string, withDevice = true) => ({
    cniVersion: '1.0.0',
    name: network,
    type: 'sriov-underlay',
    ...(withDevice ? { deviceID: nic.vfAddrs[vf] } : {}),
    sysfsRoot: nic.root,
    stateDir,
    logFile,
    mtu: 1400,
    mac: `02:00:00:00:0${seq % 10}:${String(10 + vf).padStart(2, '0')}`,
    ipam: { type: 'flaky-ipam', addresses: [{ address: addr }] },
  });
  // The node's CNI server socket. While no server listens there (0.1.0's daemon has none), this
  // release's shim falls back to sriov-underlay-cni (no-socket); once this release's daemon runs
  // its server (startServer), the calls go there.
  const socket = path.join(dir, 'run', 'cni.sock');
  const extra = { CNI_PATH: `${binDir}:${CNI_PATH}`, SRIOV_UNDERLAY_CNI_SOCKET: socket };
  const run = (command: string, c: unknown, e: CniEnv) => runCni(command, c, { ...e, bin: exe, extra: { ...extra, ...e.extra } });
  const runSync = (command: string, c: unknown) => runCniSync(command, c, { bin: exe, extra });
  return {
    stateDir,
    install,
    runSync,
    startServer: async () => {
      const server = await startCniServer({ socket, logFile: path.join(dir, 'server.log') });
      servers.push(server);
      return server;
    },
    /** Which path served each call of `cmd` (the log's servedBy; 0.1.0 logs none). */
    servedBy: (cmd: string) => servedByInLog(logFile, { cmd }),
    conf,
    run,
    ipamDown: (isDown: boolean) => (isDown ? fs.writeFileSync(down, '') : fs.rmSync(down, { force: true })),
    ipamDels: () => (fs.existsSync(ipamLog) ? fs.readFileSync(ipamLog, 'utf8') : ''),
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    files: (sub: string) => (fs.existsSync(path.join(stateDir, sub)) ? fs.readdirSync(path.join(stateDir, sub)).sort() : []),
  };
}
type Node = ReturnType<typeof node>;

interface Attachment {
  vf: number;
  network: string;
  addr: string;
  env: CniEnv;
  before: LinkSnapshot | null;
}

/** Pods a, b (two attachments on two networks) and c; DEL of c goes without deviceID (attachment index). */
function pods(n: Node, first: number): Attachment[] {
  const a = pod(`a${first}`);
  const b = pod(`b${first}`);
  const c = pod(`c${first}`);
  const args = (name: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=db;K8S_POD_NAME=${name};K8S_POD_UID=uid-${name}`;
  const list = [
    { vf: first, network: 'red', addr: `10.81.0.${first + 10}/24`, env: { containerId: `ctr-a${first}`, netns: a.path, ifName: 'net1', args: args('a') } },
    { vf: first + 1, network: 'red', addr: `10.81.0.${first + 11}/24`, env: { containerId: `ctr-b${first}`, netns: b.path, ifName: 'net1', args: args('b') } },
    { vf: first + 2, network: 'blue', addr: `10.82.0.${first + 12}/24`, env: { containerId: `ctr-b${first}`, netns: b.path, ifName: 'net2', args: args('b') } },
    { vf: first + 3, network: 'red', addr: `10.81.0.${first + 13}/24`, env: { containerId: `ctr-c${first}`, netns: c.path, ifName: 'net1', args: args('c') } },
  ];
  void n;
  return list.map((x) => ({ ...x, before: linkSnapshot(vfName(x.vf)) }));
}

async function addAll(n: Node, list: Attachment[]): Promise<void> {
  for (const x of list) {
    const r = await n.run('ADD', n.conf(x.vf, x.network, x.addr), x.env);
    expect(r.code, `${x.env.containerId}/${x.env.ifName}: ${r.stdout}`).toBe(0);
    expect(linkNames(path.basename(x.env.netns as string))).toContain(x.env.ifName);
  }
}

async function delAllExactly(n: Node, list: Attachment[]): Promise<void> {
  for (const [i, x] of list.entries()) {
    // The last pod's DEL carries no deviceID: the VF is found through the attachment index.
    const r = await n.run('DEL', n.conf(x.vf, x.network, x.addr, i !== list.length - 1), x.env);
    expect(r.code, `${x.env.containerId}/${x.env.ifName}: ${r.stdout}`).toBe(0);
    expect(linkSnapshot(vfName(x.vf)), `VF ${x.vf}`).toEqual(x.before);
  }
  for (const x of list) expect(linkNames(path.basename(x.env.netns as string))).toEqual(['lo']);
  expect(n.files('vfs')).toEqual([]);
  expect(n.files('attachments')).toEqual([]);
  expect(n.files('ipam-pending')).toEqual([]);
}

/** How the 0.1.0 fixtures were made: RECORD_RELEASE_FIXTURES=1 writes what 0.1.0 wrote here. */
function recordFixture(name: string, value: unknown): void {
  fs.mkdirSync(path.dirname(path.join(FORMATS_FIX, name)), { recursive: true });
  fs.writeFileSync(path.join(FORMATS_FIX, name), JSON.stringify(value));
}

beforeAll(() => {
  requireBinary();
  // 0.1.0 shipped one executable; this release the shim and, beside it, the standalone CNI.
  previous = { 'sriov-underlay': releaseExecutable(PREVIOUS) };
  thisRelease = { 'sriov-underlay': path.join(REPO, 'dist/bin/sriov-underlay'), 'sriov-underlay-cni': path.join(REPO, 'dist/bin/sriov-underlay-cni') };
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-upgrade-'));
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 24 });
}, 900_000);

afterEach(async () => {
  while (servers.length) await servers.pop()?.stop();
  while (netnses.length) netnses.pop()?.destroy();
});

afterAll(() => {
  nic?.destroy();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe(`upgrade ${PREVIOUS} → this release with pods attached`, () => {
  it(`${PREVIOUS} attaches four VFs (two on one pod) and queues an IPAM release; this release detaches them all exactly and runs the queued release`, async () => {
    const n = node();
    n.install(previous);
    const list = pods(n, 0);
    await addAll(n, list);
    // What 0.1.0 wrote has the shape of the committed 0.1.0 fixtures (so those are what it writes).
    const rec = JSON.parse(fs.readFileSync(path.join(n.stateDir, 'vfs', `${nic.vfAddrs[0]}.json`), 'utf8')) as unknown;
    if (process.env.RECORD_RELEASE_FIXTURES) recordFixture('vf-record/1-0.1.0.json', rec);
    expect(shapeOf(rec)).toEqual(shapeOf(JSON.parse(fs.readFileSync(path.join(FORMATS_FIX, 'vf-record/1-0.1.0.json'), 'utf8'))));
    expect(fs.readFileSync(path.join(n.stateDir, 'attachments', 'ctr-b0_net2'), 'utf8')).toBe(nic.vfAddrs[2]);

    // A fifth pod is deleted by 0.1.0 while the IPAM backend is down: 0.1.0 queues the release.
    const d = pod('d');
    const gone: Attachment = { vf: 8, network: 'red', addr: '10.81.0.30/24', env: { containerId: 'ctr-d', netns: d.path, ifName: 'net1' }, before: linkSnapshot(vfName(8)) };
    await addAll(n, [gone]);
    n.ipamDown(true);
    const delDown = await n.run('DEL', n.conf(8, 'red', gone.addr), gone.env);
    expect(delDown.code, `${delDown.stdout} ${delDown.stderr} ${delDown.signal}`).toBe(0);
    n.ipamDown(false);
    expect(n.files('ipam-pending')).toEqual(['ctr-d_net1.json']);
    const pending = JSON.parse(fs.readFileSync(path.join(n.stateDir, 'ipam-pending', 'ctr-d_net1.json'), 'utf8')) as unknown;
    if (process.env.RECORD_RELEASE_FIXTURES) recordFixture('ipam-pending/1-0.1.0.json', pending);
    expect(shapeOf(pending)).toEqual(shapeOf(JSON.parse(fs.readFileSync(path.join(FORMATS_FIX, 'ipam-pending/1-0.1.0.json'), 'utf8'))));

    // The upgrade while the pods run: the executables are replaced, then the daemon, which now has
    // a CNI server; from then on the shim hands the calls to it.
    n.install(thisRelease);
    const server = await n.startServer();
    const check = await n.run('CHECK', { ...n.conf(0, 'red', list[0]!.addr), prevResult: { cniVersion: '1.0.0', interfaces: [], ips: [] } }, list[0]!.env);
    expect(check.code, check.stdout).toBe(0);
    await delAllExactly(n, list);
    // The first DEL of this release ran 0.1.0's queued release (with today's CNI_PATH).
    expect(n.ipamDels()).toContain('DEL ctr-d net1');
    expect(n.servedBy('DEL').length).toBeGreaterThanOrEqual(list.length);
    expect(new Set(n.servedBy('DEL'))).toEqual(new Set(['server']));
    expect(server.exited()).toBe(false);
  });
});

describe(`rollback: this release → ${PREVIOUS} with pods attached`, () => {
  it(`${PREVIOUS} detaches what this release attached exactly, runs its queued release, and is not stopped by what it set aside`, async () => {
    const n = node();
    n.install(thisRelease);
    const server = await n.startServer();
    const list = pods(n, 10);
    await addAll(n, list);
    expect(new Set(n.servedBy('ADD'))).toEqual(new Set(['server']));
    // This release queues a release with the backend down, and sets a torn entry aside.
    const d = pod('rd');
    const gone: Attachment = { vf: 18, network: 'red', addr: '10.81.0.40/24', env: { containerId: 'ctr-rd', netns: d.path, ifName: 'net1' }, before: linkSnapshot(vfName(18)) };
    await addAll(n, [gone]);
    n.ipamDown(true);
    expect((await n.run('DEL', n.conf(18, 'red', gone.addr), gone.env)).code).toBe(0);
    fs.writeFileSync(path.join(n.stateDir, 'ipam-pending', 'ctr-torn_net1.json'), '{"v":1,"type":"flaky-ip');
    const gc = n.runSync('GC', { ...n.conf(0, 'none', '10.0.0.1/24'), cniVersion: '1.1.0', ipam: undefined, deviceID: undefined });
    expect(gc.code).toBe(1); // it reports the torn entry it set aside
    expect(n.files('ipam-pending')).toEqual(['ctr-rd_net1.json']);
    n.ipamDown(false);

    // The rollback while the pods run: 0.1.0's daemon replaces this release's (no CNI server any
    // more) and its executable replaces the shim.
    await server.stop();
    n.install(previous);
    await delAllExactly(n, list);
    expect(n.ipamDels()).toContain('DEL ctr-rd net1');
  });

  it(`a VF record of a newer format: ${PREVIOUS} refuses DEL (it validates the version), this release refuses it naming the release; VF and file untouched`, async () => {
    const n = node();
    n.install(thisRelease);
    const [x] = pods(n, 20);
    await addAll(n, [x!]);
    const file = path.join(n.stateDir, 'vfs', `${nic.vfAddrs[20]}.json`);
    // What a future release would write: its own format version, its name.
    const future = { ...(JSON.parse(fs.readFileSync(file, 'utf8')) as object), version: 2, writtenBy: '0.3.0' };
    fs.writeFileSync(file, JSON.stringify(future));
    const bytes = fs.readFileSync(file);
    const inPod = linkNames(path.basename(x!.env.netns as string));

    const mine = await n.run('DEL', n.conf(20, 'red', x!.addr), x!.env);
    expect(mine.code).toBe(1);
    expect(mine.json?.code).toBe(108);
    expect(n.servedBy('DEL')).toEqual(['fallback:no-socket']);
    expect(String(mine.json?.msg)).toBe(
      `VF record ${file} is format "vf-record" version 2, written by release 0.3.0; release 0.2.0 reads only version 1: left untouched`,
    );
    const gc = n.runSync('GC', { ...n.conf(0, 'red', '10.0.0.1/24'), cniVersion: '1.1.0', ipam: undefined, deviceID: undefined, 'cni.dev/valid-attachments': [] });
    expect(gc.code).toBe(1);
    expect(String(gc.json?.msg)).toContain('written by release 0.3.0');
    // Nor does an ADD of another pod take the VF over (kubelet would not hand it out, but a stale
    // device plugin view could).
    const other = pod('other');
    const add = await n.run('ADD', n.conf(20, 'red', '10.81.0.99/24'), { containerId: 'ctr-other', netns: other.path, ifName: 'net1' });
    expect(add.json?.code).toBe(108);
    expect(linkNames(other.name)).toEqual(['lo']);

    n.install(previous);
    const old = await n.run('DEL', n.conf(20, 'red', x!.addr), x!.env);
    expect(old.code).toBe(1);
    expect(old.json?.code).toBe(5);
    expect(String(old.json?.msg)).toContain(`${file}: field "version"`);

    // Nobody guessed: the VF is still in the pod, the record byte for byte as it was.
    expect(linkNames(path.basename(x!.env.netns as string))).toEqual(inPod);
    expect(fs.readFileSync(file)).toEqual(bytes);
    expect(n.files('vfs')).toEqual([`${nic.vfAddrs[20]}.json`]);

    // Clean-up only (there is no 0.3.0 to roll forward to): the record back in a format this
    // release reads, and its DEL restores the VF.
    fs.writeFileSync(file, JSON.stringify({ ...future, version: 1 }));
    n.install(thisRelease);
    await delAllExactly(n, [x!]);
  });
});
