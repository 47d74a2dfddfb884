/**
 * The node daemon as shipped: the built single executable (dist/bin/sriov-underlay-node) when it
 * exists, else node/entry.ts bundled the same way. Flags, start-up, registration, metrics,
 * SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { buildSync } from 'esbuild';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEmulatedNic, type EmulatedNic } from '../../fixtures/sysfs-tree';
import { harness, pfSpecs, type Harness } from './harness';

const REPO = path.resolve(__dirname, '../../..');
const BUILT = path.join(REPO, 'dist/bin/sriov-underlay-node');
let cmd: string[] = [];

beforeAll(() => {
  if (fs.existsSync(BUILT)) {
    cmd = [BUILT];
    return;
  }
  const out = path.join(REPO, 'dist/test/sriov-underlay-node.js');
  buildSync({ entryPoints: [path.join(REPO, 'node/entry.ts')], bundle: true, platform: 'node', target: 'node20', format: 'cjs', outfile: out, logLevel: 'error' });
  cmd = [process.execPath, out];
});

const env = () => {
  const e = { ...process.env };
  delete e.NODE_EXTRA_CA_CERTS;
  return e;
};

let h: Harness | undefined;
let child: ChildProcess | undefined;
let nic: EmulatedNic | undefined;
afterEach(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
  await h?.cleanup();
  nic?.destroy();
  h = nic = undefined;
});

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) =>
    http
      .get(url, (res) => {
        let s = '';
        res.on('data', (c: Buffer) => (s += c.toString()));
        res.on('end', () => resolve(s));
      })
      .on('error', reject),
  );
}

describe('sriov-underlay-node executable', () => {
  it('rejects bad flags with exit 2, naming the flag', () => {
    const r = spawnSync(cmd[0]!, [...cmd.slice(1), '--kubelet-dir', 'relative', '--registration-mode', 'both'], { env: env(), encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('flag "--kubelet-dir": must be an absolute path');
    expect(r.stderr).toContain('flag "--registration-mode"');
    const help = spawnSync(cmd[0]!, [...cmd.slice(1), '--help'], { env: env(), encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--registration-mode MODE');
  });

  it('serves the pools, registers, exports metrics and stops cleanly on SIGTERM', async () => {
    h = await harness({ mode: 'legacy', pfs: pfSpecs(1, 2), config: { resourceList: [{ resourceName: 'vf' }] } });
    const port = 20000 + Math.floor(Math.random() * 20000);
    child = spawn(
      cmd[0]!,
      [...cmd.slice(1), '--kubelet-dir', h.kubelet.dir, '--sysfs-root', h.sysfs, '--config', h.config.file, '--devinfo-dir', h.devinfo, '--metrics-address', `127.0.0.1:${port}`, '--log-level', 'info'],
      { env: env(), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let logs = '';
    child.stderr!.on('data', (c: Buffer) => (logs += c.toString()));
    const k = h.kubelet;
    // Fail at once, with the daemon's own words, if it exits instead of serving.
    await k
      .waitFor('devices from the executable', () => {
        if (child?.exitCode !== null) throw new Error(`the daemon exited with ${child?.exitCode}:\n${logs}`);
        return k.devices('sriov-underlay.io/vf')?.length === 2;
      }, 60_000)
      .catch((e: Error) => {
        throw new Error(`${e.message}\ndaemon log:\n${logs}`);
      });
    const { response } = await k.allocate('sriov-underlay.io/vf', ['0000:81:10.1']);
    expect(response.container_responses[0]?.envs.PCIDEVICE_SRIOV_UNDERLAY_IO_VF).toBe('0000:81:10.1');
    const metrics = await get(`http://127.0.0.1:${port}/metrics`);
    expect(metrics).toContain('sriov_underlay_dp_pool_registered{resource="sriov-underlay.io/vf"} 1');
    const socket = k.plugins.get('sriov-underlay.io/vf')!.endpoint;
    expect(fs.existsSync(socket)).toBe(true);
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);
    // pino JSON lines on stderr
    const lines = logs.trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toContain('pool serving');
  });

  it('follows PF carrier through its own netlink link monitor', async () => {
    const tag = `dq${randomBytes(1).toString('hex')}`;
    h = await harness({
      mode: 'plugin-watcher',
      pfs: (sysfs) => {
        nic = createEmulatedNic({ tag, root: sysfs, pfs: 1, vfsPerPf: 2 });
      },
      config: { resourceList: [{ resourceName: 'vf', selectors: { pfNames: [`${tag}p0`] } }] },
    });
    child = spawn(
      cmd[0]!,
      [...cmd.slice(1), '--kubelet-dir', h.kubelet.dir, '--sysfs-root', h.sysfs, '--config', h.config.file, '--devinfo-dir', '', '--metrics-address', '', '--rescan-interval-ms', '60000'],
      { env: env(), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let logs = '';
    child.stderr!.on('data', (c: Buffer) => (logs += c.toString()));
    const k = h.kubelet;
    const states = () => (k.devices('sriov-underlay.io/vf') ?? []).map((d) => d.health);
    await k.waitFor('2 healthy', () => states().join() === 'Healthy,Healthy', 30_000).catch((e: Error) => {
      throw new Error(`${e.message}\nregistrations: ${JSON.stringify(k.registrations)}\ndaemon log:\n${logs}`);
    });
    nic!.setPfCarrier(0, false);
    await k.waitFor('unhealthy after carrier loss', () => states().join() === 'Unhealthy,Unhealthy');
    nic!.setPfCarrier(0, true);
    await k.waitFor('healthy again', () => states().join() === 'Healthy,Healthy');
  });
});
