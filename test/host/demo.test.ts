/**
 * `npm run demo` end to end, as a user runs it (scripts/demo.sh: set-up, incremental build, then the
 * demo on emulated VFs), and Ctrl-C in the middle of it. The output is checked for what the demo
 * promises (the registered IPs and MAC in the table, ping and isolation, VFs restored) and the host
 * for what it must not leave behind (netns, links, processes, the work directory).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cniMode } from '../fixtures/cni';
import { ip, ipJson } from '../fixtures/host-net';

const ROOT = path.resolve(__dirname, '..', '..');

interface Run {
  code: number | null;
  out: string;
}

function runDemo(opts: { interruptAfter?: RegExp } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, SRIOV_DEMO_NO_NPM_CI: '1' };
    delete env.NODE_EXTRA_CA_CERTS;
    const child = spawn('bash', ['scripts/demo.sh'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const onData = (b: Buffer) => {
      out += b.toString();
      if (opts.interruptAfter && !sent && opts.interruptAfter.test(out)) {
        sent = true;
        child.kill('SIGINT'); // scripts/demo.sh execs node: this is the demo process itself
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** The run's tag and work directory, from the demo's own header lines. */
function identity(out: string): { tag: string; workDir: string } {
  const tag = /tag (dm[0-9a-f]{2})\)/.exec(out)?.[1];
  const logs = /^logs: (\S+)\/logs$/m.exec(out)?.[1];
  if (!tag || !logs) throw new Error(`no tag/work dir in the demo output:\n${out}`);
  return { tag, workDir: logs };
}

function leftBehind(tag: string, workDir: string): string[] {
  const netns = ip('netns', 'list').split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${tag}-`));
  const links = ipJson<Array<{ ifname: string }>>('link', 'show').map((l) => l.ifname).filter((n) => n.startsWith(tag));
  const procs = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(workDir);
      } catch {
        return false; // exited meanwhile
      }
    });
  return [...netns.map((n) => `netns ${n}`), ...links.map((l) => `link ${l}`), ...procs.map((p) => `process ${p}`), ...(fs.existsSync(workDir) ? [`dir ${workDir}`] : [])];
}

const row = (out: string, pod: string) => out.split('\n').find((l) => l.startsWith(`demo/${pod} `)) ?? '';

describe('npm run demo (host mode)', () => {
  it('schedules three pods with their registered networks, proves connectivity and isolation, restores every VF', { timeout: 600_000 }, async () => {
    const r = await runDemo();
    expect(r.code, r.out).toBe(0);
    const { tag, workDir } = identity(r.out);

    // The table: registered IPs (dual stack for app-b), app-b's MAC and app-c's MTU, each pod's source.
    expect(row(r.out, 'app-a')).toMatch(/^demo\/app-a +10\.100\.0\.11\/24 +100 \(fabric, emulated\) +max 300 \/ min 100 Mb\/s \(not enforced\) +([0-9a-f]{2}:){5}[0-9a-f]{2} +1500 +0000:01:1[0-9a-f]\.\d +dm[0-9a-f]{2}p0 vf \d +demo\/demo-net key "app-a" @ rv \d+$/);
    expect(row(r.out, 'app-b')).toMatch(/^demo\/app-b +10\.100\.0\.12\/24 fd00:100::12\/64 +100 .* 02:00:0a:64:00:0c +1500 +0000:01:1[0-9a-f]\.\d +dm[0-9a-f]{2}p0 vf \d +demo\/demo-net key "app-b" @ rv \d+$/);
    expect(row(r.out, 'app-c')).toMatch(/^demo\/app-c +10\.200\.0\.13\/24 +200 .* 1400 +0000:01:1[0-9a-f]\.\d +dm[0-9a-f]{2}p1 vf \d +demo\/demo-net key "app-c" @ rv \d+$/);
    expect(r.out).toMatch(/refuses PF-side settings by design/);
    // The node agent claimed each registered address cluster-wide, and released them after DEL.
    expect(r.out).toContain('vlan100.10.100.0.11: 10.100.0.11 (fixed), held by pod demo/app-a');
    expect(r.out).toContain('vlan100.fd000100000000000000000000000012: fd00:100::12 (fixed), held by pod demo/app-b');
    expect(r.out).toContain('vlan200.10.200.0.13: 10.200.0.13 (fixed), held by pod demo/app-c');
    expect(r.out).toContain("✓ the pods' IPClaims released by the node agent");

    expect(r.out).toContain('PASS ping app-a → app-b (10.100.0.12, VLAN 100): reachable');
    expect(r.out).toContain('PASS ping app-b → app-a (10.100.0.11, VLAN 100): reachable');
    expect(r.out).toMatch(/PASS app-c \(VLAN 200, .*\) → app-a 10\.100\.0\.11: isolated, no reply/);
    expect(r.out).toMatch(/PASS app-c \(VLAN 200, .*\) → app-b 10\.100\.0\.12: isolated, no reply/);

    // Restored: the three VFs the pods held, before and after identical.
    const restored = r.out.split('\n').filter((l) => /^ {2}restored 0000:01:/.test(l));
    expect(restored.map((l) => /, (app-[abc])'s\)$/.exec(l)?.[1]).sort()).toEqual(['app-a', 'app-b', 'app-c']);
    const pairs = [...r.out.matchAll(/ {6}before: (.*)\n {6}in pod: .*\n {6}after: {2}(.*)/g)];
    expect(pairs).toHaveLength(3);
    for (const [, before, after] of pairs) expect(after).toBe(before);
    expect(r.out).not.toContain('NOT RESTORED');
    // Every call went through the shim, and the demo says which path served it: the one the CNI
    // matrix chose for this run (the CNI server up, or down and the shim's fallback).
    const served = [...r.out.matchAll(/^ {2}✓ (?:app-[abc]: Allocate.*; ADD|DEL app-[abc]: ).*\(.*served by ([^)]+)\)$/gm)].map((m) => m[1]);
    expect(served).toEqual(Array(6).fill(cniMode() === 'server' ? 'server' : 'fallback:no-socket'));
    expect(r.out).toMatch(/demo complete\s*$/);

    expect(leftBehind(tag, workDir)).toEqual([]);
  });

  it('Ctrl-C in the middle tears everything down', { timeout: 600_000 }, async () => {
    const r = await runDemo({ interruptAfter: /✓ app-b: Allocate/ });
    expect(r.code, r.out).toBe(130);
    expect(r.out).toContain('SIGINT: stopping the demo');
    const { tag, workDir } = identity(r.out);
    expect(r.out).toMatch(/✓ node daemon, CNI server, fake kubelet and fake API stopped; netns, veths and the sysfs tree of dm[0-9a-f]{2} deleted/);
    expect(leftBehind(tag, workDir)).toEqual([]);
  });
});
