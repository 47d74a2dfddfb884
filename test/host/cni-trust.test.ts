/**
 * The trust boundary between the node daemon (uid 0, no capabilities) and the CNI (root, every
 * capability), attacked for real: a capability-less uid 0 process with exactly the DaemonSet's
 * mounts plants what it can, files planted in the old shared state dir before an upgrade, netconf
 * path fields aimed at other dirs, and an agent that is down, slow or answers garbage. The plugin
 * is the built executable, run as a runtime runs it. The payload is a real shared object: if any
 * root process loads it, the marker file appears.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PATH_PREFIXES_ENV, REPO, requireBinary, runCni } from '../fixtures/cni';
import { linkNames, linkSnapshot, makeNetns, uniqueTag, type NetnsHandle } from '../fixtures/host-net';
import { createEmulatedNic, type EmulatedNic } from '../fixtures/sysfs-tree';
import { buildEvilSo, daemonSetMounts, runAsDaemon, type DaemonMount } from './helpers/daemon-attacker';
import { THIS_RELEASE } from '../../src/state/formats';

let nic: EmulatedNic;
let tmp: string;
let ns: NetnsHandle;
let hostRoot: string;
let stateDir: string;
let queueDir: string;
let marker: string;
let evilSo: string;
const tag = uniqueTag('t');

beforeAll(() => {
  requireBinary();
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cni-trust-')));
  hostRoot = path.join(tmp, 'host');
  stateDir = path.join(hostRoot, 'var/lib/cni/sriov-underlay');
  queueDir = path.join(hostRoot, 'var/lib/sriov-underlay/release-queue');
  marker = path.join(tmp, 'PWNED');
  evilSo = buildEvilSo(tmp, marker);
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 2 });
  ns = makeNetns(`${tag}-pod`);
});
afterAll(() => {
  ns?.destroy();
  nic?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  fs.rmSync(stateDir, { recursive: true, force: true });
  fs.rmSync(queueDir, { recursive: true, force: true });
});

const conf = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0', // what Debian's static plugin speaks
  name: 'trustnet',
  type: 'sriov-underlay',
  deviceID: nic.vfAddrs[0],
  sysfsRoot: nic.root,
  stateDir,
  releaseQueueDir: queueDir,
  logFile: path.join(tmp, 'cni.log'),
  ipam: { type: 'static', addresses: [{ address: '10.61.0.2/24' }] },
  ...extra,
});
/** GC is CNI 1.1, which Debian's static does not speak: GC without delegated IPAM. */
const gcConf = () => conf({ cniVersion: '1.1.0', ipam: undefined, 'cni.dev/valid-attachments': [] });
/** DEL with registrations on: it also leaves a note in the release queue. */
const withAgent = (extra: Record<string, unknown> = {}) => conf({ agentSocket: path.join(tmp, 'no-agent.sock'), ...extra });
const env = (containerId: string) => ({ containerId, netns: ns.path, ifName: 'net1', args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bank;K8S_POD_NAME=${containerId};K8S_POD_UID=uid-${containerId}` });
/** The runtime's environment of a node whose plugin paths are the test's temp dir (and nothing else). */
const onlyTmp = () => ({ extra: { [PATH_PREFIXES_ENV]: tmp } });

/** A queued IPAM release that, if run, loads the attacker's shared object into Debian's static plugin (dynamically linked). */
const preloadEntry = (so: string) =>
  JSON.stringify({
    type: 'static',
    stdin: JSON.stringify({ cniVersion: '1.0.0', name: 'trustnet', type: 'sriov-underlay', ipam: { type: 'static', addresses: [] } }),
    env: { CNI_CONTAINERID: 'evil', CNI_IFNAME: 'net1', LD_PRELOAD: so },
  });

/** The messages of the plugin's pino log, one per line. */
function logMessages(): string {
  const file = path.join(tmp, 'cni.log');
  if (!fs.existsSync(file)) return '';
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { msg: string }).msg)
    .join('\n');
}

function stateFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  if (fs.existsSync(stateDir)) walk(stateDir, '');
  return out.sort();
}

describe('a capability-less uid 0 process with the node daemon\'s mounts', () => {
  it('gets no file into the CNI\'s state and nothing it plants is run or followed', async () => {
    const mounts = daemonSetMounts();
    // The manifest's own word: the CNI's private state dir is never mounted writable into the
    // daemon (the node policy reads it, read-only).
    expect(mounts.filter((m) => m.hostPath === '/var/lib/cni/sriov-underlay' && !m.readOnly)).toEqual([]);
    expect(mounts.map((m) => m.hostPath)).toContain('/var/lib/sriov-underlay/release-queue');
    const before = linkSnapshot(`${tag}p0v0`);
    const add = await runCni('ADD', conf(), env('victim'));
    expect(add.code, add.stdout).toBe(0);

    const target = path.join(tmp, 'target-file');
    fs.writeFileSync(target, 'untouched\n');
    const writable = mounts.filter((m) => !m.readOnly).map((m) => m.mountPath);
    // The attacker knows the host paths (the manifest and docs say them); here the host is hostRoot.
    const evilHost = path.join(hostRoot, 'run/sriov-underlay/evil.so');
    const attack = runAsDaemon(
      hostRoot,
      mounts,
      `
      echo "uid=$(id -u) $(grep CapEff /proc/self/status)"
      for d in /var/lib/cni/sriov-underlay ${writable.join(' ')}; do
        cp /evil.so "$d/evil.so" 2>/dev/null
        for sub in ipam-pending vfs attachments locks claim-releases; do mkdir -p "$d/$sub" 2>/dev/null; done
        printf '%s' "$ENTRY" > "$d/ipam-pending/evil_net1.json" 2>/dev/null && echo "planted $d/ipam-pending"
        printf '../../../../../../escaped' > "$d/attachments/victim_net1" 2>/dev/null
        ln -sf "$TARGET" "$d/locks/${nic.vfAddrs[0]}.lock" 2>/dev/null
      done
      # the queue: links at note-like names, and a temp-file name trap
      for n in link.json .trap.tmp 00000000000000000000000000000000.json; do ln -sf "$TARGET" "/var/lib/sriov-underlay/release-queue/$n" 2>/dev/null; done
      ls -la /var/lib/sriov-underlay/release-queue 2>/dev/null; true
      `,
      { files: { '/evil.so': evilSo }, env: { ENTRY: preloadEntry(evilHost), TARGET: target } },
    );
    expect(attack.code, attack.stderr).toBe(0);
    expect(attack.stdout).toMatch(/uid=0 CapEff:\s+0{16}/);
    expect(attack.stdout).toContain('planted /var/lib/sriov-underlay/release-queue/ipam-pending');

    // Everything the runtime would call next on this node.
    const del = await runCni('DEL', withAgent(), env('victim'));
    expect(del.code, del.stdout).toBe(0);
    const gc = await runCni('GC', gcConf(), {});
    expect(gc.code, gc.stdout).toBe(0);
    const add2 = await runCni('ADD', conf(), env('victim2'));
    expect(add2.code, add2.stdout).toBe(0);
    expect((await runCni('DEL', withAgent(), env('victim2'))).code).toBe(0);

    expect(fs.existsSync(marker), fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : '').toBe(false);
    expect(fs.readFileSync(target, 'utf8')).toBe('untouched\n');
    expect(fs.existsSync(path.join(tmp, 'escaped.lock'))).toBe(false);
    // Only what the CNI itself wrote is in its state dir: the lock files of the VF it used.
    expect(stateFiles()).toEqual([`locks/${nic.vfAddrs[0]}.lock`]);
    expect(fs.lstatSync(path.join(stateDir, 'locks', `${nic.vfAddrs[0]}.lock`)).isFile()).toBe(true);
    // Our two notes are in the queue under fresh names, next to the attacker's links (left for the agent).
    const notes = fs.readdirSync(queueDir).filter((n) => /^[0-9a-f]{32}\.json$/.test(n) && !fs.lstatSync(path.join(queueDir, n)).isSymbolicLink());
    expect(notes).toHaveLength(2);
    expect(linkSnapshot(`${tag}p0v0`)).toEqual(before);
    expect(linkNames(ns.name)).toEqual(['lo']);
  }, 120_000);
});

describe('the other containers of the DaemonSet against the CNI server\'s socket and the CNI\'s state', () => {
  it('the node container (it mounts /run/sriov-underlay writable) neither reaches nor replaces the server\'s socket in /run/sriov-underlay-cni', async () => {
    const mounts = daemonSetMounts();
    const sockDir = path.join(hostRoot, 'run/sriov-underlay-cni');
    fs.mkdirSync(sockDir, { recursive: true, mode: 0o700 });
    const server = net.createServer((c) => c.end('SRIOV-UNDERLAY-CNI/1\n'));
    await new Promise<void>((resolve) => server.listen(path.join(sockDir, 'cni.sock'), resolve));
    try {
      const attack = runAsDaemon(
        hostRoot,
        mounts,
        `
        echo "uid=$(id -u) $(grep CapEff /proc/self/status)"
        ls -A /run/sriov-underlay-cni 2>/dev/null | sed 's/^/seen: /'
        touch /run/sriov-underlay-cni/planted 2>/dev/null && echo "planted in the socket dir"
        mv /run/sriov-underlay-cni /run/sriov-underlay/moved 2>/dev/null && echo "moved the socket dir"
        rmdir /run/sriov-underlay-cni 2>/dev/null && echo "removed the socket dir"
        # Where the socket lived before it moved out of the daemon's dir: nothing to take over.
        ls -A /run/sriov-underlay/cni 2>/dev/null | sed 's/^/seen: /'
        # Next to it, what the daemon may do: its own files in /run/sriov-underlay.
        touch /run/sriov-underlay/agent-side && echo "wrote its own dir"
        true
        `,
      );
      expect(attack.code, attack.stderr).toBe(0);
      expect(attack.stdout).toMatch(/uid=0 CapEff:\s+0{16}/);
      expect(attack.stdout).toContain('wrote its own dir');
      expect(attack.stdout).not.toMatch(/seen:|planted|moved|removed|unmounted/);
      expect(fs.readdirSync(sockDir)).toEqual(['cni.sock']);
      expect(fs.lstatSync(path.join(sockDir, 'cni.sock')).isSocket()).toBe(true);
    } finally {
      server.close();
      fs.rmSync(path.join(hostRoot, 'run'), { recursive: true, force: true });
    }
  });

  it('the node container (its node policy counts the CNI\'s VFs) reads the CNI\'s state and cannot write it', () => {
    // Its writable /sys is the real one here: the attack leaves it out and touches only the state dir.
    const mounts = daemonSetMounts(undefined, 'node').filter((m) => m.hostPath !== '/sys');
    expect(mounts.find((m) => m.hostPath === '/var/lib/cni/sriov-underlay')).toMatchObject({ readOnly: true });
    fs.mkdirSync(path.join(stateDir, 'vfs'), { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'vfs', 'record.json'), '{}');
    const attack = runAsDaemon(
      hostRoot,
      mounts,
      `
      cat /var/lib/cni/sriov-underlay/vfs/record.json && echo " read"
      for sub in . vfs ipam-pending; do mkdir -p /var/lib/cni/sriov-underlay/$sub 2>/dev/null; echo x > /var/lib/cni/sriov-underlay/$sub/evil.json 2>/dev/null && echo "planted $sub"; done
      rm -f /var/lib/cni/sriov-underlay/vfs/record.json 2>/dev/null; true
      `,
    );
    expect(attack.code, attack.stderr).toBe(0);
    expect(attack.stdout).toContain('{} read');
    expect(attack.stdout).not.toContain('planted');
    expect(stateFiles()).toEqual(['vfs/record.json']);
  });
});

describe('files planted in the shared state dir of release 0.1.0, before the upgrade', () => {
  it('are validated: none is run, loaded or followed; GC names each file and field; DEL still works', async () => {
    // 0.1.0's DaemonSet mounted the CNI's state dir into the daemon.
    const oldMounts: DaemonMount[] = [
      { hostPath: '/var/lib/cni/sriov-underlay', mountPath: '/var/lib/cni/sriov-underlay', readOnly: false },
      { hostPath: '/run/sriov-underlay', mountPath: '/run/sriov-underlay', readOnly: false },
    ];
    const secret = path.join(tmp, 'secret-entry.json');
    fs.writeFileSync(secret, preloadEntry(path.join(hostRoot, 'run/sriov-underlay/evil.so')));
    const evilScript = path.join(hostRoot, 'run/sriov-underlay/evil');
    const staticConf = (type: string) => JSON.stringify({ cniVersion: '1.0.0', name: 'trustnet', type: 'sriov-underlay', ipam: { type } });
    const entry = (type: string, envv: Record<string, string> = { CNI_CONTAINERID: 'evil', CNI_IFNAME: 'net1' }, stdinType = type) =>
      JSON.stringify({ type, stdin: staticConf(stdinType), env: envv });
    const record = JSON.stringify({
      version: 1,
      pciAddr: nic.vfAddrs[1],
      networkName: 'trustnet',
      containerId: '../../evil',
      ifName: 'net1',
      netns: '/proc/1/ns/net',
      phase: 'ready',
      createdAt: '2026-11-20T10:00:00.000Z',
      original: { pfNetdev: 'eth0', vfIndex: 1, userspace: false, vf: null, netdev: { name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, up: true, altnames: [] } },
      ipam: { type: '../../../run/sriov-underlay/evil' },
      cniVersion: '1.0.0',
    });
    const d = '/var/lib/cni/sriov-underlay';
    const attack = runAsDaemon(
      hostRoot,
      oldMounts,
      `
      set -e
      cp /evil.so /run/sriov-underlay/evil.so
      printf '#!/bin/sh\\necho "uid $(id -u) ran attacker code" >> ${marker}\\n' > /run/sriov-underlay/evil; chmod +x /run/sriov-underlay/evil
      mkdir -p ${d}/ipam-pending ${d}/vfs ${d}/attachments
      printf '%s' "$PRELOAD" > ${d}/ipam-pending/preload.json
      printf '%s' "$ABS" > ${d}/ipam-pending/abs.json
      printf '%s' "$DOTDOT" > ${d}/ipam-pending/dotdot.json
      printf '%s' "$MISMATCH" > ${d}/ipam-pending/mismatch.json
      yes | head -c 2000000 > ${d}/ipam-pending/huge.json
      ln -s "$SECRET" ${d}/ipam-pending/link.json
      mkfifo ${d}/ipam-pending/fifo.json
      printf '%s' "$RECORD" > ${d}/vfs/${nic.vfAddrs[1]}.json
      printf '../../../../../../escaped' > ${d}/attachments/evil_net1
      echo "uid=$(id -u) $(grep CapEff /proc/self/status)"
      `,
      {
        files: { '/evil.so': evilSo },
        env: {
          PRELOAD: preloadEntry(path.join(hostRoot, 'run/sriov-underlay/evil.so')),
          ABS: entry(evilScript),
          DOTDOT: entry('../../..' + evilScript),
          MISMATCH: entry('static', { CNI_CONTAINERID: 'evil', CNI_IFNAME: 'net1' }, 'host-local'),
          SECRET: secret,
          RECORD: record,
        },
      },
    );
    expect(attack.code, attack.stderr).toBe(0);
    expect(attack.stdout).toMatch(/uid=0 CapEff:\s+0{16}/);

    // A kill after 30 s: a plugin that blocks on the planted FIFO fails here instead of hanging.
    const del = await runCni('DEL', conf(), { containerId: 'evil', netns: ns.path, ifName: 'net1' }, 30_000);
    expect(del.signal).toBeNull();
    expect(del.code, del.stdout).toBe(0);
    const gc = await runCni('GC', gcConf(), {}, 30_000);
    expect(gc.code, gc.stdout).toBe(1);
    const msg = String(gc.json?.msg);
    // Everything DEL set aside is gone from the queue before GC; DEL's log says why, GC names the record.
    const log = logMessages();
    const pending = path.join(stateDir, 'ipam-pending');
    expect(log).toContain(`queued IPAM release ${pending}/preload.json: field "env": Unrecognized key: "LD_PRELOAD"`);
    expect(log).toContain(`queued IPAM release ${pending}/abs.json: field "type": must be a bare plugin name`);
    expect(log).toContain(`queued IPAM release ${pending}/dotdot.json: field "type": must be a bare plugin name`);
    expect(log).toContain(`queued IPAM release ${pending}/mismatch.json: field "stdin.ipam.type": must be the entry's type "static"`);
    expect(log).toContain(`${pending}/huge.json is 2000000 bytes, more than the 1048576 allowed`);
    expect(log).toContain(`${pending}/link.json is a symlink; refusing to follow it`);
    expect(log).toContain(`${pending}/fifo.json is not a regular file`);
    expect(msg).toContain(`VF record ${stateDir}/vfs/${nic.vfAddrs[1]}.json: field "containerId"`);
    expect(msg).toContain('field "ipam.type": must be a bare plugin name');
    // Set aside outside ipam-pending/, which release 0.1.0 reads whole (and would run) after a rollback.
    expect(fs.readdirSync(pending)).toEqual([]);
    expect(fs.readdirSync(path.join(stateDir, 'ipam-pending.set-aside')).map((n) => n.replace(/\.bad-\d+$/, '.bad')).sort()).toEqual(
      ['abs', 'dotdot', 'fifo', 'huge', 'link', 'mismatch', 'preload'].map((n) => `${n}.json.bad`),
    );

    expect(fs.existsSync(marker), fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : '').toBe(false);
    expect(fs.existsSync(path.join(tmp, 'escaped.lock'))).toBe(false);
    expect(linkNames(ns.name)).toEqual(['lo']);
  }, 120_000);

  it('what 0.1.0 legitimately left is still honoured: its IPAM release runs, its note moves to the queue', async () => {
    fs.cpSync(path.join(REPO, 'test/fixtures/state-0.1.0'), stateDir, { recursive: true, filter: (s) => !s.endsWith('README.md') });
    const noteBefore = JSON.parse(fs.readFileSync(path.join(stateDir, 'claim-releases/ctr-old-net1.json'), 'utf8')) as unknown;
    const del = await runCni('DEL', withAgent(), { containerId: 'ctr-new', netns: ns.path, ifName: 'net1' });
    expect(del.code, del.stdout).toBe(0);
    // The queued release ran (static's DEL succeeds) and was removed; the old dir is gone.
    expect(fs.readdirSync(path.join(stateDir, 'ipam-pending'))).toEqual([]);
    expect(fs.existsSync(path.join(stateDir, 'claim-releases'))).toBe(false);
    const notes = fs.readdirSync(queueDir).map((n) => JSON.parse(fs.readFileSync(path.join(queueDir, n), 'utf8')) as { containerId: string });
    expect(notes).toHaveLength(2);
    expect(notes).toContainEqual({ ...(noteBefore as object), writtenBy: THIS_RELEASE });
    expect(notes.map((n) => n.containerId).sort()).toEqual(['ctr-new', 'ctr-old']);
    expect(logMessages()).toContain('queued IPAM release done');
  }, 60_000);
});

describe('netconf path fields (a NetworkAttachmentDefinition is written by namespace admins)', () => {
  // A plugin that accepts these writes its log into cron's dir (as unfixed code did); never left behind.
  const cronFile = `/etc/cron.d/sriov-underlay-${tag}`;
  afterAll(() => fs.rmSync(cronFile, { force: true }));
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['stateDir', { stateDir: '/var/lib/sriov-underlay/release-queue' }, 'must be under /var/lib/cni/sriov-underlay'],
    ['stateDir', { stateDir: '/var/lib/cni/sriov-underlay/../../../../tmp/x' }, 'must be a normalized absolute path'],
    ['stateDir', { stateDir: '/var/lib/kubelet/pods/x/volumes/kubernetes.io~empty-dir/state' }, 'must be under /var/lib/cni/sriov-underlay'],
    ['sysfsRoot', { sysfsRoot: '/var/lib/kubelet/pods/x/volumes/fake-sys' }, 'must be under /sys'],
    ['sysfsRoot', { sysfsRoot: '/sys/../tmp' }, 'must be a normalized absolute path'],
    ['logFile', { logFile: cronFile }, 'must be under /var/log/sriov-underlay'],
    ['logFile', { logFile: '/var/log/sriov-underlay' }, 'must be under /var/log/sriov-underlay'],
    ['logFile', { logFile: 'cni.log' }, 'must be an absolute path'],
    ['releaseQueueDir', { releaseQueueDir: '/var/lib/cni/sriov-underlay' }, 'must be under /var/lib/sriov-underlay/release-queue'],
    ['releaseQueueDir', { releaseQueueDir: '/etc' }, 'must be under /var/lib/sriov-underlay/release-queue'],
  ];
  it.each(cases)('%s %j is refused naming the field; nothing is created, the VF is untouched', async (field, bad, why) => {
    const before = linkSnapshot(`${tag}p0v0`);
    for (const cmd of ['ADD', 'DEL'] as const) {
      const r = await runCni(cmd, withAgent(bad), { ...env('pathattack'), ...onlyTmp() });
      expect(r.code, r.stdout).toBe(1);
      expect(r.json).toMatchObject({ code: 7 });
      expect(String(r.json?.msg)).toContain(`field "${field}": ${why}`);
    }
    expect(fs.existsSync(cronFile)).toBe(false);
    expect(fs.existsSync(stateDir)).toBe(false);
    expect(linkSnapshot(`${tag}p0v0`)).toEqual(before);
  });

  it('prefixes in the runtime\'s environment are what allows a test tree; malformed entries there count for nothing', async () => {
    const r = await runCni('ADD', conf(), { ...env('prefixes'), extra: { [PATH_PREFIXES_ENV]: `relative:/tmp/../:${tmp}/` } });
    expect(r.code).toBe(1);
    expect(String(r.json?.msg)).toContain('field "sysfsRoot": must be under /sys (more prefixes only through SRIOV_UNDERLAY_PATH_PREFIXES');
    const ok = await runCni('ADD', conf(), { ...env('prefixes'), ...onlyTmp() });
    expect(ok.code, ok.stdout).toBe(0);
    expect((await runCni('DEL', conf(), { ...env('prefixes'), ...onlyTmp() })).code).toBe(0);
  });
});

describe('the node agent down, slow and answering garbage, as the CNI sees it', () => {
  let server: net.Server | null = null;
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = null;
  });
  /** A fake agent: reads the request line, then does `answer` with the socket. */
  const agent = async (sock: string, answer: (c: net.Socket) => void) => {
    fs.rmSync(sock, { force: true });
    server = net.createServer((c) => {
      c.once('data', () => answer(c));
      c.on('error', () => undefined);
    });
    await new Promise<void>((r) => server!.listen(sock, r));
  };
  const lookupConf = (sock: string) => conf({ agentSocket: sock });

  it('down (no socket, or a stale one): code 11 saying what to check; the VF is untouched', async () => {
    const before = linkSnapshot(`${tag}p0v0`);
    const missing = await runCni('ADD', lookupConf(path.join(tmp, 'absent.sock')), env('down'));
    expect(missing.json).toMatchObject({ code: 11 });
    expect(String(missing.json?.msg)).toContain('(ENOENT): check that the sriov-underlay-node pod is running on this node');
    const stale = path.join(tmp, 'stale.sock');
    execFileSync('python3', ['-c', `import socket;s=socket.socket(socket.AF_UNIX);s.bind(${JSON.stringify(stale)})`]);
    const refused = await runCni('ADD', lookupConf(stale), env('down'));
    expect(refused.json).toMatchObject({ code: 11 });
    expect(String(refused.json?.msg)).toContain('ECONNREFUSED');
    expect(linkSnapshot(`${tag}p0v0`)).toEqual(before);
    expect(fs.existsSync(path.join(stateDir, 'vfs')) ? fs.readdirSync(path.join(stateDir, 'vfs')) : []).toEqual([]);
  });

  it('garbage (not JSON, wrong shape, a huge line, cut mid-answer): code 11 naming what was wrong; the VF is untouched', async () => {
    const sock = path.join(tmp, 'garbage.sock');
    const answers: Array<[string | Buffer, string]> = [
      ['<html>502 Bad Gateway</html>\n', '(not JSON)'],
      [`${JSON.stringify({ v: 1, ok: true, registered: true, settings: { vlan: 5000 }, source: { namespace: 'a', configMap: 'b', key: 'c', resourceVersion: '1' } })}\n`, 'field "settings.vlan"'],
      [Buffer.alloc(4 * 1024 * 1024, 'a'), 'more than 65536 bytes without an end of line'],
      ['{"v":1,"ok":true,"regis', 'closed in the middle of an answer'],
    ];
    const before = linkSnapshot(`${tag}p0v0`);
    for (const [answer, why] of answers) {
      await agent(sock, (c) => c.end(answer));
      const r = await runCni('ADD', lookupConf(sock), env('garbage'));
      expect(r.json, r.stdout).toMatchObject({ code: 11 });
      expect(String(r.json?.msg)).toContain(why);
      expect(String(r.json?.msg)).toContain('Nothing was changed on the VF');
      await new Promise<void>((res) => server!.close(() => res()));
      server = null;
    }
    expect(linkSnapshot(`${tag}p0v0`)).toEqual(before);
    expect(linkNames(ns.name)).toEqual(['lo']);
  });

  it('slow: a 6 s answer is waited for (within the 10 s bound); no answer in 10 s is code 11 naming the bound', async () => {
    const sock = path.join(tmp, 'slow.sock');
    await agent(sock, (c) => setTimeout(() => c.end('{"v":1,"ok":true,"registered":false}\n'), 6_000));
    const t0 = Date.now();
    const slow = await runCni('ADD', lookupConf(sock), env('slow'));
    expect(slow.code, slow.stdout).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(6_000);
    expect((await runCni('DEL', conf(), env('slow'))).code).toBe(0);
    await new Promise<void>((res) => server!.close(() => res()));
    const before = linkSnapshot(`${tag}p0v0`);
    await agent(sock, () => undefined); // reads the request, never answers
    const hung = await runCni('ADD', lookupConf(sock), env('hung'));
    expect(hung.json).toMatchObject({ code: 11 });
    expect(String(hung.json?.msg)).toContain('no answer within 10000 ms');
    expect(linkSnapshot(`${tag}p0v0`)).toEqual(before);
  }, 60_000);
});
