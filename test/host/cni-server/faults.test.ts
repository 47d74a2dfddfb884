/**
 * The shim against the real CNI server when the server fails (docs/cni-server-protocol.md): killed
 * at random moments of ADD, restarted between ADD and DEL, gone with its socket file left behind,
 * a reply cut in half, a server that never answers, and a server of another protocol version. Real
 * netns, emulated VFs, the built shim, server and standalone; the faults in between are made by a
 * proxy on a socket of the test's own (a byte relay that cuts, stalls or rewrites) or by signals.
 *
 * Each test starts its own servers on its own socket (it ignores the CNI matrix's mode: these are the
 * server-mode counterpart of the SIGKILL matrices in ../cni-faults.test.ts).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { requireBinary, runCni, type CniRun } from '../../fixtures/cni';
import { GREETING, SOCKET_ENV, servedByInLog, startCniServer, type CniServer } from '../../fixtures/cni-server-process';
import { linkNames, linkSnapshot, makeNetns, uniqueTag, type LinkSnapshot, type NetnsHandle } from '../../fixtures/host-net';
import { createEmulatedNic, type EmulatedNic } from '../../fixtures/sysfs-tree';

let nic: EmulatedNic;
let tmp: string;
let ns: NetnsHandle;
let befores: (LinkSnapshot | null)[];
const tag = uniqueTag('q');
const servers: CniServer[] = [];
const proxies: net.Server[] = [];

beforeAll(() => {
  requireBinary();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-srv-faults-'));
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 2 });
  ns = makeNetns(`${tag}-pod`);
  befores = [0, 1].map((i) => linkSnapshot(vf(i)));
});
afterEach(async () => {
  for (const p of proxies.splice(0)) p.close();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(() => {
  ns?.destroy();
  nic?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const vf = (i: number) => `${tag}p0v${i}`;
const logFile = () => path.join(tmp, 'cni.log');
const conf = (i: number) => ({
  cniVersion: '1.0.0',
  name: 'srvfault',
  type: 'sriov-underlay',
  deviceID: nic.vfAddrs[i],
  sysfsRoot: nic.root,
  stateDir: path.join(tmp, 'state'),
  logFile: logFile(),
  mtu: 1400,
  mac: '02:00:00:00:78:01',
  logLevel: 'debug',
  ipam: { type: 'static', addresses: [{ address: '10.69.0.2/24', gateway: '10.69.0.1' }], routes: [{ dst: '10.70.0.0/16' }] },
});
const recordOf = (i: number) => path.join(tmp, 'state', 'vfs', `${nic.vfAddrs[i]}.json`);
const envAt = (socket: string, containerId: string) => ({ containerId, netns: ns.path, ifName: 'net1', extra: { [SOCKET_ENV]: socket } });

let socketSeq = 0;
/** A fresh socket path in a directory the server creates itself. */
const newSocket = () => path.join(tmp, `run-${socketSeq++}`, 'cni.sock');

async function server(socket = newSocket()): Promise<CniServer> {
  const s = await startCniServer({ socket, logFile: path.join(tmp, 'server.log') });
  servers.push(s);
  return s;
}

/** The served-by markers the calls since `from` (a marker count) left in the CNI log. */
const marksSince = (from: number) => servedByInLog(logFile()).slice(from);
const markCount = () => servedByInLog(logFile()).length;

function expectRestored(i: number, ctx: string): void {
  expect(linkSnapshot(vf(i)), `${ctx}: VF ${i} exactly as before`).toEqual(befores[i]);
  expect(linkNames(ns.name), `${ctx}: nothing left in the pod netns`).toEqual(['lo']);
  expect(fs.existsSync(recordOf(i)), `${ctx}: no record left`).toBe(false);
}

/** A CNI answer is a result (exit 0) or a spec error object (exit 1): never a crash or garbage. */
function expectCniAnswer(r: CniRun, ctx: string): void {
  expect(r.signal, `${ctx}: ${r.stderr}`).toBeNull();
  if (r.code === 0) return;
  expect(r.code, `${ctx}: ${r.stdout}${r.stderr}`).toBe(1);
  expect(typeof r.json?.code, `${ctx}: stdout is a CNI error: ${r.stdout}`).toBe('number');
  expect(typeof r.json?.msg, `${ctx}: ${r.stdout}`).toBe('string');
}

/** Small deterministic PRNG so a failing run can be replayed from its printed seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type ProxyMode = 'cut-reply' | 'greeting-version' | 'request-version';

/**
 * A byte relay between the shim and the server, on its own socket, that breaks one thing:
 *   cut-reply         the greeting passes, the reply stops halfway, then the connection closes;
 *   greeting-version  the greeting says version 2 (a server of a later release);
 *   request-version   the request header says version 0 (a shim of an earlier release).
 * `requestBytes` counts what the shim sent after the greeting; `replies` what the server answered.
 */
function proxy(upstream: string, mode: ProxyMode): Promise<{ socket: string; requestBytes: () => number; replies: string[] }> {
  const socket = path.join(tmp, `proxy-${socketSeq++}.sock`);
  let requestBytes = 0;
  const replies: string[] = [];
  const p = net.createServer((client) => {
    const up = net.connect(upstream);
    let greeted = false;
    let fromServer = Buffer.alloc(0);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.on('data', (b: Buffer) => {
      requestBytes += b.length;
      if (mode === 'request-version' && requestBytes === b.length) b = Buffer.from(b.toString('latin1').replace(/^SRIOV-UNDERLAY-CNI\/1 /, 'SRIOV-UNDERLAY-CNI/0 '), 'latin1');
      up.write(b);
    });
    client.on('end', () => up.end());
    up.on('data', (b: Buffer) => {
      fromServer = Buffer.concat([fromServer, b]);
      if (!greeted && fromServer.length >= GREETING.length) {
        greeted = true;
        const g = fromServer.subarray(0, GREETING.length).toString('latin1');
        client.write(mode === 'greeting-version' ? g.replace('/1\n', '/2\n') : g);
        fromServer = fromServer.subarray(GREETING.length);
      }
    });
    up.on('end', () => {
      replies.push(fromServer.toString('latin1'));
      if (mode === 'cut-reply') client.end(fromServer.subarray(0, Math.floor(fromServer.length / 2)));
      else client.end(fromServer);
    });
  });
  proxies.push(p);
  return new Promise((resolve) => p.listen(socket, () => resolve({ socket, requestBytes: () => requestBytes, replies })));
}

const RUNS = Number(process.env.KILL_RUNS ?? 200);

it(`kill -9 of the server at ${RUNS} random moments of ADD, then DEL through the fallback: the VF is exactly as before`, async () => {
  const seed = Number(process.env.KILL_SEED ?? Date.now() % 1_000_000);
  const rand = prng(seed);
  const socket = newSocket();
  let s = await server(socket);
  // Calibrate: a whole ADD through the warm server (the shortest of three).
  let addMs = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = process.hrtime.bigint();
    const add = await runCni('ADD', conf(0), envAt(socket, `calib-${k}`));
    addMs = Math.min(addMs, Number(process.hrtime.bigint() - t0) / 1e6);
    expect(add.code, add.stdout).toBe(0);
    expect((await runCni('DEL', conf(0), envAt(socket, `calib-${k}`))).code).toBe(0);
  }
  const landed = { beforeGreeting: 0, tryAgain: 0, finished: 0, afterRecord: 0, afterMove: 0 };
  for (let run = 0; run < RUNS; run++) {
    const i = run % 2;
    const id = `skill-${run}`;
    const delay = rand() * addMs * 1.2;
    const marks = markCount();
    const killer = new Promise<void>((r) => setTimeout(r, delay)).then(() => s.kill());
    const add = await runCni('ADD', conf(i), envAt(socket, id));
    await killer;
    const ctx = `seed ${seed} run ${run} kill at ${delay.toFixed(1)} ms of ${addMs.toFixed(1)}: add ${add.code} ${add.stdout.trim()}`;
    expectCniAnswer(add, ctx);
    const addMarks = marksSince(marks);
    // Where did the kill land? Before the greeting the shim fell back and the standalone did the ADD;
    // mid-call the shim answers "try again" (11); or the server had already answered.
    if (addMarks.some((m) => m.startsWith('fallback:'))) landed.beforeGreeting++;
    else if (add.code !== 0) {
      expect(add.json?.code, ctx).toBe(11);
      landed.tryAgain++;
      if (fs.existsSync(recordOf(i))) landed.afterRecord++;
      if (linkSnapshot(vf(i)) === null) landed.afterMove++;
    } else landed.finished++;
    // The runtime's answer: DEL, here with the server dead and its socket file left behind.
    const dm = markCount();
    const del = await runCni('DEL', conf(i), envAt(socket, id));
    expect(del.code, `${ctx}; del: ${del.stdout}`).toBe(0);
    // The server is dead: whatever the DEL logged (a DEL with nothing to undo may log nothing) came
    // from the standalone the shim exec'd.
    expect(s.exited(), ctx).toBe(true);
    for (const mark of marksSince(dm)) expect(mark, ctx).toMatch(/^fallback:(refused|no-socket)$/);
    expectRestored(i, ctx);
    s = await server(socket);
  }
  console.log(
    `server kill -9 during ADD: ${RUNS} runs; before the greeting (fallback served) ${landed.beforeGreeting}, ` +
      `mid-call (shim said 11) ${landed.tryAgain} (${landed.afterRecord} after the record, ${landed.afterMove} after the move), ` +
      `after the answer ${landed.finished} (seed ${seed})`,
  );
  // The spread must really have interrupted the server's ADDs, not only idle servers.
  expect(landed.tryAgain).toBeGreaterThan(RUNS / 10);
  expect(landed.afterRecord).toBeGreaterThan(0);
  expect(landed.afterMove).toBeGreaterThan(0);
  expect(fs.readdirSync(path.join(tmp, 'state', 'vfs'))).toEqual([]);
}, 3_600_000);

it('the server restarted between ADD and DEL: the new one DELs what the old one added', async () => {
  const socket = newSocket();
  const first = await server(socket);
  const m = markCount();
  const add = await runCni('ADD', conf(0), envAt(socket, 'restart'));
  expect(add.code, add.stdout).toBe(0);
  expect(linkNames(ns.name)).toContain('net1');
  await first.stop();
  await server(socket);
  const del = await runCni('DEL', conf(0), envAt(socket, 'restart'));
  expect(del.code, del.stdout).toBe(0);
  expect(marksSince(m)).toEqual(expect.arrayContaining(['server']));
  expect(new Set(marksSince(m))).toEqual(new Set(['server']));
  expectRestored(0, 'after the restart');
});

it('a stale socket file: the shim falls back (refused); a new server replaces the file and serves', async () => {
  const socket = newSocket();
  // What a crash leaves: the socket file, bound by nobody.
  const dead = await server(socket);
  await dead.kill();
  expect(fs.statSync(socket).isSocket()).toBe(true);
  let m = markCount();
  const add = await runCni('ADD', conf(0), envAt(socket, 'stale'));
  expect(add.code, add.stdout).toBe(0);
  const del = await runCni('DEL', conf(0), envAt(socket, 'stale'));
  expect(del.code, del.stdout).toBe(0);
  expect(new Set(marksSince(m))).toEqual(new Set(['fallback:refused']));
  expectRestored(0, 'through the fallback');
  await server(socket);
  m = markCount();
  expect((await runCni('ADD', conf(0), envAt(socket, 'stale2'))).code).toBe(0);
  expect((await runCni('DEL', conf(0), envAt(socket, 'stale2'))).code).toBe(0);
  expect(new Set(marksSince(m))).toEqual(new Set(['server']));
  expectRestored(0, 'through the new server');
});

it('a reply cut in half: ADD answers "try again" (11) and DEL through the fallback restores; a cut DEL falls back', async () => {
  const s = await server();
  const cut = await proxy(s.socket, 'cut-reply');
  const add = await runCni('ADD', conf(0), envAt(cut.socket, 'cut'));
  // The server did the whole ADD; the shim saw half its answer.
  expect(cut.replies[0], 'the server answered in full').toMatch(/^SRIOV-UNDERLAY-CNI\/1 0 \d+\n\{/);
  expectCniAnswer(add, 'cut ADD');
  expect(add.code).toBe(1);
  expect(add.json?.code).toBe(11);
  expect(linkNames(ns.name)).toContain('net1');
  const m = markCount();
  const del = await runCni('DEL', conf(0), envAt(cut.socket, 'cut'));
  expect(del.code, del.stdout).toBe(0);
  // The server ran the DEL (its full reply is on record) and the shim saw half of it: a DEL that
  // exits 0 after that was the standalone's (the shim writes nothing before a whole reply), which
  // found the work done (and may log nothing for it).
  expect(cut.replies[1], 'the server answered the DEL in full').toMatch(/^SRIOV-UNDERLAY-CNI\/1 0 0\n$/);
  expect(marksSince(m)).toContain('server');
  for (const mark of marksSince(m)) expect(mark).toMatch(/^(server|fallback:broken-reply)$/);
  expectRestored(0, 'after the cut DEL');
});

it('a server that never answers (SIGSTOP): the shim gives up at its greeting bound and the standalone serves; the server serves again once continued', async () => {
  const s = await server();
  process.kill(s.pid(), 'SIGSTOP');
  try {
    const m = markCount();
    const add = await runCni('ADD', conf(1), envAt(s.socket, 'stopped'));
    expect(add.code, add.stdout).toBe(0);
    expect(linkNames(ns.name)).toContain('net1');
    const del = await runCni('DEL', conf(1), envAt(s.socket, 'stopped'));
    expect(del.code, del.stdout).toBe(0);
    expect(new Set(marksSince(m))).toEqual(new Set(['fallback:no-greeting']));
    expectRestored(1, 'through the fallback');
  } finally {
    process.kill(s.pid(), 'SIGCONT');
  }
  // The connections the stopped server had queued are gone (their shims left): it must shrug them
  // off and serve the next call.
  const m = markCount();
  expect((await runCni('ADD', conf(1), envAt(s.socket, 'continued'))).code).toBe(0);
  expect((await runCni('DEL', conf(1), envAt(s.socket, 'continued'))).code).toBe(0);
  expect(new Set(marksSince(m))).toEqual(new Set(['server']));
  expectRestored(1, 'through the continued server');
});

it('a server of a later protocol version (greeting /2): no request is sent, the standalone serves ADD and DEL', async () => {
  const s = await server();
  const v2 = await proxy(s.socket, 'greeting-version');
  const m = markCount();
  const add = await runCni('ADD', conf(0), envAt(v2.socket, 'v2'));
  expect(add.code, add.stdout).toBe(0);
  const del = await runCni('DEL', conf(0), envAt(v2.socket, 'v2'));
  expect(del.code, del.stdout).toBe(0);
  expect(v2.requestBytes(), 'the shim sent nothing to a server of another version').toBe(0);
  expect(new Set(marksSince(m))).toEqual(new Set(['fallback:version']));
  expectRestored(0, 'after ADD and DEL through the fallback');
});

it('a shim of an earlier protocol version (request /0): the server runs nothing and the call never succeeds wrongly', async () => {
  const s = await server();
  const v0 = await proxy(s.socket, 'request-version');
  const add = await runCni('ADD', conf(0), envAt(v0.socket, 'v0'));
  expect(v0.requestBytes()).toBeGreaterThan(0);
  expectCniAnswer(add, 'ADD with a /0 request');
  expect(add.code, add.stdout).toBe(1);
  expect(add.json?.code, 'the server refuses the header (code 6) and says so').toBe(6);
  // Nothing ran: the VF never left the host, no record was written.
  expect(linkSnapshot(vf(0))).toEqual(befores[0]);
  expect(fs.existsSync(recordOf(0))).toBe(false);
  expect((await runCni('DEL', conf(0), envAt(s.socket, 'v0'))).code).toBe(0);
  expectRestored(0, 'after DEL');
});

it(`SIGKILL of the shim at ${Math.ceil(RUNS / 4)} random moments of ADD with the server up, then DEL at once: the VF is exactly as before`, async () => {
  // The server goes on with an ADD whose shim died: the runtime's DEL right after must still win.
  const seed = Number(process.env.KILL_SEED ?? Date.now() % 1_000_000);
  const rand = prng(seed);
  const s = await server();
  // The shortest of three ADDs: one slowed by load elsewhere would put most kills after the answer.
  let addMs = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = process.hrtime.bigint();
    expect((await runCni('ADD', conf(0), envAt(s.socket, `calib-${k}`))).code).toBe(0);
    addMs = Math.min(addMs, Number(process.hrtime.bigint() - t0) / 1e6);
    expect((await runCni('DEL', conf(0), envAt(s.socket, `calib-${k}`))).code).toBe(0);
  }
  let killed = 0;
  for (let run = 0; run < Math.ceil(RUNS / 4); run++) {
    const i = run % 2;
    const delay = rand() * addMs * 1.2;
    const add = await runCni('ADD', conf(i), envAt(s.socket, `shimkill-${run}`), delay);
    if (add.signal === 'SIGKILL') killed++;
    const del = await runCni('DEL', conf(i), envAt(s.socket, `shimkill-${run}`));
    const ctx = `seed ${seed} run ${run} delay ${delay.toFixed(1)} ms add=${add.signal ?? add.code}`;
    expect(del.code, `${ctx}: ${del.stdout}`).toBe(0);
    // Give an ADD the server might still be running the time to finish, then look.
    await new Promise((r) => setTimeout(r, addMs * 2));
    expectRestored(i, ctx);
  }
  // Some kills must have landed before the answer (most, on a quiet machine).
  expect(killed).toBeGreaterThan(RUNS / 40);
  console.log(`shim SIGKILL with the server up: ${killed}/${Math.ceil(RUNS / 4)} killed (seed ${seed})`);
  expect(s.exited()).toBe(false);
}, 3_600_000);
