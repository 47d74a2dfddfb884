import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { queueClaimRelease } from '../../../cni/claim-release';
import { ReleaseQueue } from '../../../node/agent/release-queue';
import { STALE_TEMP_MS } from '../../../src/state/atomic-file';
import { THIS_RELEASE } from '../../../src/state/formats';
import { silentLogger } from '../../../src/log';
import type { ClaimRelease } from '../../../src/schemas/claim-release';
import type { Invocation } from '../../../cni/skel';


/** The dir's names with set-aside suffixes (`.bad-<epoch ms>`) shortened to `.bad`. */
const asideNames = (dir: string) => fs.readdirSync(dir).map((n) => n.replace(/\.bad-\d+$/, '.bad')).sort();
let stateDir: string;
beforeEach(() => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-rq-'));
});
afterEach(() => fs.rmSync(stateDir, { recursive: true, force: true }));

const inv = (containerId: string) =>
  ({ containerId, ifName: 'net1', pod: { namespace: 'db', name: 'pg-0', uid: 'uid-1' } }) as unknown as Invocation;

describe('claim release queue (CNI DEL → agent)', () => {
  it('keeps a note while the release fails and removes it once it succeeds', async () => {
    const file = queueClaimRelease(stateDir, inv('c1'), { network: 'vlan100', addresses: ['10.100.0.11/24'] }, new Date('2026-01-01T00:00:00Z'));
    expect(path.basename(file)).toMatch(/^[0-9a-f]{32}\.json$/);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({
      v: 1,
      writtenBy: THIS_RELEASE,
      containerId: 'c1',
      ifName: 'net1',
      namespace: 'db',
      name: 'pg-0',
      uid: 'uid-1',
      network: 'vlan100',
      node: os.hostname(),
      addresses: ['10.100.0.11/24'],
      queuedAt: '2026-01-01T00:00:00.000Z',
    });
    let apiUp = false;
    const seen: ClaimRelease[] = [];
    const q = new ReleaseQueue({
      dir: path.dirname(file),
      log: silentLogger(),
      intervalMs: 60_000,
      release: async (rec) => {
        if (!apiUp) throw new Error('connect ECONNREFUSED 10.0.0.1:6443');
        seen.push(rec);
      },
    });
    await q.scan();
    expect(fs.existsSync(file)).toBe(true);
    expect(q.failures).toBe(1);
    apiUp = true;
    await q.scan();
    expect(fs.existsSync(file)).toBe(false);
    expect(seen.map((r) => r.containerId)).toEqual(['c1']);
    expect(q.released).toBe(1);
  });

  it('sets an invalid note aside and still handles the valid ones', async () => {
    const good = queueClaimRelease(stateDir, inv('c2'));
    const dir = path.dirname(good);
    fs.writeFileSync(path.join(dir, 'junk-net1.json'), '{"v":1,"containerId":"../../etc"}');
    const seen: string[] = [];
    const q = new ReleaseQueue({ dir, log: silentLogger(), release: async (r) => void seen.push(r.containerId) });
    await q.scan();
    expect(seen).toEqual(['c2']);
    expect(asideNames(dir)).toEqual(['junk-net1.json.bad']);
  });

  it('skips a killed writer\'s temp file and removes it once stale', async () => {
    const good = queueClaimRelease(stateDir, inv('c4'));
    const dir = path.dirname(good);
    const partial = fs.readFileSync(path.join(__dirname, '../../fixtures/state-leftovers/temp-file.partial'));
    fs.writeFileSync(path.join(dir, 'c5-net1.json.tmp-4242'), partial);
    fs.writeFileSync(path.join(dir, 'c6-net1.json.tmp-4243'), partial);
    const old = new Date(Date.now() - STALE_TEMP_MS - 5_000);
    fs.utimesSync(path.join(dir, 'c5-net1.json.tmp-4242'), old, old);
    const seen: string[] = [];
    const q = new ReleaseQueue({ dir, log: silentLogger(), release: async (r) => void seen.push(r.containerId) });
    await q.scan();
    expect(seen).toEqual(['c4']);
    expect(fs.readdirSync(dir)).toEqual(['c6-net1.json.tmp-4243']);
  });

  it('picks up a note written while it runs (directory watch)', async () => {
    const dir = path.join(stateDir, 'queue');
    const seen: string[] = [];
    let resolveSeen: () => void = () => undefined;
    const got = new Promise<void>((r) => (resolveSeen = r));
    const q = new ReleaseQueue({
      dir,
      log: silentLogger(),
      intervalMs: 60_000,
      release: async (r) => {
        seen.push(r.containerId);
        resolveSeen();
      },
    });
    q.start();
    queueClaimRelease(dir, inv('c3'));
    await got;
    await q.stop();
    expect(seen).toEqual(['c3']);
  });

  it('two DELs of one attachment leave two notes: nothing is overwritten or read back', () => {
    const a = queueClaimRelease(stateDir, inv('c4'));
    const b = queueClaimRelease(stateDir, inv('c4'));
    expect(a).not.toBe(b);
    expect(fs.readdirSync(stateDir).sort()).toEqual([path.basename(a), path.basename(b)].sort());
  });

  it('refuses a queue dir that is a symlink (the daemon pointing the CNI at /etc)', () => {
    const target = path.join(stateDir, 'elsewhere');
    fs.mkdirSync(target);
    fs.symlinkSync(target, path.join(stateDir, 'queue'));
    expect(() => queueClaimRelease(path.join(stateDir, 'queue'), inv('c5'))).toThrow(/not a directory/);
    expect(fs.readdirSync(target)).toEqual([]);
  });

  it('never follows a symlink, a FIFO or an oversized note; sets each aside and handles the rest', async () => {
    const secret = path.join(stateDir, 'secret');
    fs.writeFileSync(secret, JSON.stringify({ v: 1, containerId: 'from-the-link', ifName: 'net1', queuedAt: 'x' }));
    const dir = path.join(stateDir, 'queue');
    const good = queueClaimRelease(dir, inv('c6'));
    fs.symlinkSync(secret, path.join(dir, 'link.json'));
    execFileSync('mkfifo', [path.join(dir, 'fifo.json')]);
    fs.writeFileSync(path.join(dir, 'huge.json'), `{"v":1,"containerId":"huge","ifName":"net1","queuedAt":"${'x'.repeat(64 * 1024)}"}`);
    const old = path.join(dir, '.abandoned.tmp');
    fs.writeFileSync(old, '{"v":1');
    fs.utimesSync(old, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    const fresh = path.join(dir, '.inflight.tmp');
    fs.writeFileSync(fresh, '{"v":1');
    const seen: string[] = [];
    const q = new ReleaseQueue({ dir, log: silentLogger(), release: async (r) => void seen.push(r.containerId) });
    await q.scan();
    expect(seen).toEqual(['c6']);
    expect(fs.existsSync(good)).toBe(false);
    expect(asideNames(dir)).toEqual(['.inflight.tmp', 'fifo.json.bad', 'huge.json.bad', 'link.json.bad']);
    const link = fs.readdirSync(dir).find((n) => n.startsWith('link.json.bad-'))!;
    expect(fs.lstatSync(path.join(dir, link)).isSymbolicLink()).toBe(true);
    expect(fs.existsSync(secret)).toBe(true);
  });
});
