/**
 * The CNI shim (dist/bin/sriov-underlay) and the figures its bounds rest on.
 *
 * 1. Its own cost against a trivial peer (greets, reads the request, answers at once: no work):
 *    wall time of a forwarded ADD, next to /bin/true (the floor of a process start), Debian's Go
 *    host-device VERSION and the fallback to the standalone CNI, all measured in this run.
 * 2. Its peak RSS (GNU time, ru_maxrss): forwarded; falling back to a trivial program (the shim's
 *    own part of a fallback); falling back to the real standalone CNI (what the runtime sees).
 * 3. The greeting bound: how long a warm server under load takes to accept and greet. A Node peer
 *    does each call's work on its main thread (a synchronous section standing for the netns and
 *    netlink work, half before and half after a real exec of Debian's `static` IPAM plugin, as a
 *    delegated IPAM call), while 32 shims call it in a loop; a separate C probe connects every
 *    2 ms and times connect → whole greeting. The peer is a test stand-in for load, not the CNI
 *    server (node/cni-server/): it shows how the greeting behaves when the event loop is busy.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runForPeakRss, runTimed } from './lib/process';
import { percentile } from './lib/stats';

const ROOT = path.resolve(__dirname, '..', '..');
const SHIM = path.join(ROOT, 'dist', 'bin', 'sriov-underlay');
const STANDALONE = path.join(ROOT, 'dist', 'bin', 'sriov-underlay-cni');
const GO_PLUGIN = '/usr/lib/cni/host-device';
const IPAM = '/usr/lib/cni/static';
const NETCONF = '{"cniVersion":"1.1.0","name":"bench","type":"sriov-underlay"}';
const RUNS = 60;
/** The fallback starts the Node CNI: fewer runs, it is the slow path. */
const FALLBACK_RUNS = 20;
const CONCURRENT = 32;
const PROBES = 1000;

/** The peer, run by a separate node: SOCK, SYNC_MS (main-thread work per call), IPAM (exec'd). */
const PEER = `
const net = require('node:net');
const { spawn } = require('node:child_process');
const SYNC = Number(process.env.SYNC_MS);
const IPAM = process.env.IPAM;
const result = Buffer.from('{"cniVersion":"1.1.0","interfaces":[{"name":"net1","sandbox":"/var/run/netns/x"}],"ips":[{"address":"192.0.2.10/24","interface":0}]}\\n');
const busy = (ms) => { const end = performance.now() + ms; while (performance.now() < end); };
net.createServer((s) => {
  s.on('error', () => {});
  s.write('SRIOV-UNDERLAY-CNI/1\\n');
  let buf = Buffer.alloc(0);
  const onData = (d) => {
    buf = Buffer.concat([buf, d]);
    const nl = buf.indexOf(10);
    if (nl < 0) return;
    const m = /^SRIOV-UNDERLAY-CNI\\/1 (\\d+) (\\d+)$/.exec(buf.subarray(0, nl).toString());
    if (!m) return s.destroy();
    if (buf.length < nl + 1 + Number(m[1]) + Number(m[2])) return;
    s.off('data', onData);
    const answer = () => { busy(SYNC / 2); s.end(Buffer.concat([Buffer.from('SRIOV-UNDERLAY-CNI/1 0 ' + result.length + '\\n'), result])); };
    busy(SYNC / 2);
    if (!IPAM) return answer();
    const c = spawn(IPAM, [], { env: { CNI_COMMAND: 'VERSION' }, stdio: ['pipe', 'ignore', 'ignore'] });
    c.on('close', answer);
    c.stdin.on('error', () => {}); // it may exit before reading
    c.stdin.end('{"cniVersion":"1.1.0"}');
  };
  s.on('data', onData);
}).listen(process.env.SOCK, () => process.stdout.write('ready\\n'));
`;

const PROBE_C = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  int n = atoi(argv[2]);
  for (int i = 0; i < n; i++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    char g[21];
    size_t h = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
      while (h < sizeof g) { ssize_t r = read(fd, g + h, sizeof g - h); if (r <= 0) break; h += (size_t)r; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    printf("%ld\\n", h == sizeof g ? (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000 : -1L);
    usleep(2000);
  }
  return 0;
}
`;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-shim-'));
const ms = (v: number): string => `${v.toFixed(2)} ms`;

function startPeer(name: string, syncMs: number, ipam: boolean): Promise<{ sock: string; child: ChildProcess }> {
  const sock = path.join(scratch, `${name}.sock`);
  const child = spawn(process.execPath, ['-e', PEER], {
    env: { SOCK: sock, SYNC_MS: String(syncMs), IPAM: ipam ? IPAM : '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`peer exited ${code}`)));
    child.stdout!.once('data', () => resolve({ sock, child }));
  });
}

function timed(label: string, file: string, env: Record<string, string>, stdin = NETCONF, runs = RUNS): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = runTimed({ file, env, stdin });
    if (r.status !== 0) throw new Error(`${label}: exit ${r.status ?? r.signal}: ${r.stdout}${r.stderr}`);
    out.push(r.ms);
  }
  return out;
}

function row(label: string, s: number[]): string {
  return `  ${label.padEnd(52)} p50 ${ms(percentile(s, 50)).padStart(10)}  p99 ${ms(percentile(s, 99)).padStart(10)}`;
}

function rss(label: string, file: string, env: Record<string, string>, stdin = NETCONF): string {
  const samples = [0, 1, 2, 3, 4].map(() => {
    const r = runForPeakRss({ file, env, stdin });
    if (r.status !== 0) throw new Error(`${label}: exit ${r.status ?? r.signal}: ${r.stdout}${r.stderr}`);
    return r.peakRssMb;
  });
  return `  ${label.padEnd(52)} ${(Math.max(...samples)).toFixed(2)} MB (max of 5)`;
}

/**
 * 32 shims calling the peer in a loop until stop(). They run from a directory whose
 * `sriov-underlay-cni` prints the fallback reason and exits 42, so every fallback is counted.
 */
function load(sock: string, shim: string): { stop: () => Promise<{ served: number; fallbacks: Map<string, number> }> } {
  let running = true;
  let served = 0;
  const fallbacks = new Map<string, number>();
  const loops = Array.from({ length: CONCURRENT }, async () => {
    while (running) {
      await new Promise<void>((resolve, reject) => {
        const c = spawn(shim, [], {
          env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bench', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'net1', SRIOV_UNDERLAY_CNI_SOCKET: sock },
          stdio: ['pipe', 'pipe', 'ignore'],
        });
        let out = '';
        c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
        c.on('error', reject);
        c.on('close', (code) => {
          if (code === 0) served++;
          else {
            const why = code === 42 ? out : `exit ${code}: ${out.slice(0, 120)}`;
            fallbacks.set(why, (fallbacks.get(why) ?? 0) + 1);
          }
          resolve();
        });
        c.stdin!.end(NETCONF);
      });
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return { served, fallbacks };
    },
  };
}

function probe(sock: string, bin: string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const c = spawn(bin, [sock, String(PROBES)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    c.on('error', reject);
    c.on('close', () => resolve(out.trim().split('\n').map(Number)));
  });
}

async function main(): Promise<void> {
  for (const f of [SHIM, STANDALONE]) {
    if (!fs.existsSync(f)) {
      console.log(`${path.relative(ROOT, f)}: not built yet (npm run build)`);
      return;
    }
  }
  const peers: ChildProcess[] = [];
  try {
    const trivial = await startPeer('trivial', 0, false);
    peers.push(trivial.child);
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bench', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'net1', SRIOV_UNDERLAY_CNI_SOCKET: trivial.sock };
    const down = { CNI_COMMAND: 'VERSION', SRIOV_UNDERLAY_CNI_SOCKET: path.join(scratch, 'absent.sock') };

    console.log(`wall time, spawn to exit (${RUNS} runs; the fallback ${FALLBACK_RUNS}):`);
    const t = timed('/bin/true', '/bin/true', {}, '');
    const f = timed('shim ADD forwarded to a trivial peer', SHIM, env);
    const g = fs.existsSync(GO_PLUGIN) ? timed('Go host-device VERSION', GO_PLUGIN, { CNI_COMMAND: 'VERSION' }) : null;
    const b = timed('shim VERSION, server down (fallback to Node CNI)', SHIM, down, NETCONF, FALLBACK_RUNS);
    console.log(row('/bin/true (process start floor)', t));
    console.log(row('shim ADD forwarded to a trivial peer', f));
    if (g) console.log(row('Go host-device VERSION (reference)', g));
    console.log(row('shim VERSION via fallback (standalone Node CNI)', b));
    console.log(`  shim's own time over the floor: p50 ${ms(percentile(f, 50) - percentile(t, 50))}`);

    // The shim's own part of a fallback: the exec'd program is /bin/true.
    const lone = path.join(scratch, 'lone');
    fs.mkdirSync(lone);
    fs.copyFileSync(SHIM, path.join(lone, 'sriov-underlay'));
    fs.copyFileSync('/bin/true', path.join(lone, 'sriov-underlay-cni'));
    for (const x of ['sriov-underlay', 'sriov-underlay-cni']) fs.chmodSync(path.join(lone, x), 0o755);
    const counting = path.join(scratch, 'counting');
    fs.mkdirSync(counting);
    fs.copyFileSync(SHIM, path.join(counting, 'sriov-underlay'));
    fs.writeFileSync(path.join(counting, 'sriov-underlay-cni'), '#!/bin/sh\nprintf %s "$SRIOV_UNDERLAY_SERVED_BY"\nexit 42\n');
    for (const x of ['sriov-underlay', 'sriov-underlay-cni']) fs.chmodSync(path.join(counting, x), 0o755);
    console.log('peak RSS (GNU time, ru_maxrss of the process kubelet execs):');
    console.log(rss('shim ADD forwarded', SHIM, env));
    console.log(rss('shim ADD forwarded, 1 MiB stdin', SHIM, env, `{"cniVersion":"1.1.0","pad":"${'x'.repeat((1 << 20) - 40)}"}`));
    console.log(rss('shim fallback exec of /bin/true', path.join(lone, 'sriov-underlay'), down));
    console.log(rss('/bin/true alone', '/bin/true', {}, ''));
    console.log(rss('shim fallback to the standalone Node CNI, VERSION', SHIM, down));
    if (fs.existsSync(GO_PLUGIN)) console.log(rss('Go host-device VERSION (reference)', GO_PLUGIN, { CNI_COMMAND: 'VERSION' }));

    const probeBin = path.join(scratch, 'probe');
    fs.writeFileSync(`${probeBin}.c`, PROBE_C);
    execFileSync('gcc', ['-O2', '-o', probeBin, `${probeBin}.c`]);
    console.log(`greeting latency (connect → whole greeting), ${PROBES} probes 2 ms apart, ${CONCURRENT} shims calling in a loop:`);
    for (const syncMs of [0, 10, 30]) {
      const peer = await startPeer(`load${syncMs}`, syncMs, true);
      peers.push(peer.child);
      const started = Date.now();
      const l = load(peer.sock, path.join(counting, 'sriov-underlay'));
      const samples = await probe(peer.sock, probeBin);
      const { served, fallbacks } = await l.stop();
      const calls = served + [...fallbacks.values()].reduce((a, b) => a + b, 0);
      const secs = (Date.now() - started) / 1000;
      const lost = samples.filter((s) => s < 0).length;
      const good = samples.filter((s) => s >= 0).map((s) => s / 1000);
      console.log(
        `  main-thread work ${String(syncMs).padStart(2)} ms + IPAM exec per call: ${(calls / secs).toFixed(0)} calls/s;` +
          ` greeting p50 ${ms(percentile(good, 50))}, p99 ${ms(percentile(good, 99))}, p99.9 ${ms(percentile(good, 99.9))},` +
          ` max ${ms(Math.max(...good))}${lost ? `, ${lost} probes got no greeting` : ''}`,
      );
      console.log(`    shims served ${served}, not served ${calls - served}${fallbacks.size ? `: ${[...fallbacks].map(([k, v]) => `${k} ×${v}`).join(', ')}` : ''}`);
      peer.child.kill();
    }
    console.log(`  load average now: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  } finally {
    for (const p of peers) p.kill();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
