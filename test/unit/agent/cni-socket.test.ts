import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startCniSocket, type CniSocketServer } from '../../../node/agent/cni-socket';
import { lookupHandler } from '../../../node/agent/lookup';
import { MAX_ANSWER_BYTES, agentLookup, agentPodSettings, answerToPodSettings } from '../../../cni/agent-client';
import { RegistrationIndex } from '../../../src/registrations/index';
import { silentLogger } from '../../../src/log';
import { UnderlayError } from '../../../src/errors';
import { netconfSchema } from '../../../src/schemas/netconf';
import type { Invocation } from '../../../cni/skel';
import { configMap, networksCm } from '../registrations/fixtures';

let dir: string;
let server: CniSocketServer | null = null;
let raw: net.Server | null = null;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-sock-'));
});
afterEach(async () => {
  await server?.close();
  server = null;
  await closeRaw();
  fs.rmSync(dir, { recursive: true, force: true });
});

function index() {
  const idx = new RegistrationIndex();
  idx.applyConfigMap(networksCm());
  idx.applyConfigMap(
    configMap('db', 'db-net', 'registration', {
      'pg-0': 'network: vlan100\nip: 10.100.0.11\nmac: 02:00:00:00:00:11',
      bad: 'network: vlan100\nip: 10.100.0.999',
    }, { resourceVersion: '42' }),
  );
  return idx;
}

const conns = new Set<net.Socket>();
async function listenRaw(p: string, onConn: (c: net.Socket) => void) {
  raw = net.createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    onConn(c);
  });
  await new Promise<void>((r) => raw!.listen(p, () => r()));
}
async function closeRaw() {
  for (const c of conns) c.destroy();
  await new Promise<void>((r) => (raw ? raw.close(() => r()) : r()));
  raw = null;
}

/** What a SIGKILLed agent leaves behind: a socket file nobody listens on. */
function staleSocket(p: string) {
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`], {
    env: { PATH: process.env.PATH ?? '' },
  });
  expect(r.signal).toBe('SIGKILL');
  expect(fs.lstatSync(p).isSocket()).toBe(true);
}

const req = { namespace: 'db', name: 'pg-0', uid: 'u1', containerId: 'c1', ifName: 'net1', network: 'sriov' };

describe('agent socket ↔ CNI client', () => {
  it('serves a registered pod its settings and source, over a root-only socket', async () => {
    const sock = path.join(dir, 'agent.sock');
    server = await startCniSocket(sock, lookupHandler({ index: index(), log: silentLogger() }), silentLogger());
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const a = await agentLookup(sock, req);
    const s = answerToPodSettings(a);
    expect(s).toEqual({
      source: 'configmap db/db-net key "pg-0" @ resourceVersion 42',
      ips: ['10.100.0.11/24'],
      gateways: ['10.100.0.1'],
      routes: [{ dst: '10.200.0.0/16', gw: '10.100.0.1' }],
      vlan: 100,
      mac: '02:00:00:00:00:11',
      mtu: 9000,
      minTxRateMbps: 100,
      maxTxRateMbps: 1000,
      spoofchk: true,
      trust: false,
      duplicateDetection: true,
    });
  });

  it('answers not-registered with null settings, and a rejection as a CNI error naming configmap, key and field', async () => {
    const sock = path.join(dir, 'agent.sock');
    const rejected: string[] = [];
    server = await startCniSocket(
      sock,
      lookupHandler({ index: index(), log: silentLogger(), onRejected: (_r, rej) => rejected.push(rej.key) }),
      silentLogger(),
    );
    expect(answerToPodSettings(await agentLookup(sock, { ...req, name: 'nobody' }))).toBeNull();
    const a = await agentLookup(sock, { ...req, name: 'bad' });
    let err: unknown;
    try {
      answerToPodSettings(a);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnderlayError);
    expect((err as UnderlayError).code).toBe(106);
    expect((err as UnderlayError).message).toBe('configmap db/db-net key "bad": field "ip": must be an IPv4 or IPv6 address');
    expect(rejected).toEqual(['bad']);
  });

  it('replaces a stale socket file left by a dead agent, and refuses to replace a regular file', async () => {
    const sock = path.join(dir, 'agent.sock');
    staleSocket(sock);
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    await expect(startCniSocket(path.join(dir, 'file'), async () => ({ v: 1, ok: true, registered: false }), silentLogger())).rejects.toThrow(/not a socket/);
    server = await startCniSocket(sock, lookupHandler({ index: index(), log: silentLogger() }), silentLogger());
    expect((await agentLookup(sock, req)).ok).toBe(true);
  });

  it('a missing socket and a dead one are "try again later" (11) saying what to check', async () => {
    const missing = path.join(dir, 'none.sock');
    await expect(agentLookup(missing, req)).rejects.toMatchObject({ code: 11, message: expect.stringContaining(`node agent unreachable at ${missing} (ENOENT)`) });
    const dead = path.join(dir, 'dead.sock');
    staleSocket(dead);
    const e = await agentLookup(dead, req).catch((x: unknown) => x as UnderlayError);
    expect(e).toMatchObject({ code: 11 });
    expect((e as Error).message).toContain('ECONNREFUSED');
    expect((e as Error).message).toContain('check that the sriov-underlay-node pod is running on this node');
  });

  it('an agent that never answers times out as 11; one that hangs up answers nothing as 11', async () => {
    const slow = path.join(dir, 'slow.sock');
    await listenRaw(slow, (c) => c.resume());
    await expect(agentLookup(slow, req, 150)).rejects.toMatchObject({ code: 11, message: expect.stringContaining('no answer within 150 ms') });
    await closeRaw();
    const rude = path.join(dir, 'rude.sock');
    await listenRaw(rude, (c) => c.end());
    await expect(agentLookup(rude, req)).rejects.toMatchObject({ code: 11, message: expect.stringContaining('connection closed without an answer') });
  });

  it('a malformed, huge or cut answer is "try again later" naming what is wrong, not a crash or a silent default', async () => {
    const bad = path.join(dir, 'bad.sock');
    const answers = [
      'not json\n',
      `${JSON.stringify({ v: 1, ok: true, registered: true, settings: { vlan: 5000 }, source: { namespace: 'a', configMap: 'b', key: 'c', resourceVersion: '1' } })}\n`,
      'x'.repeat(MAX_ANSWER_BYTES + 1),
      '{"v":1,"ok":tr',
    ];
    await listenRaw(bad, (c) => c.end(answers.shift() ?? ''));
    await expect(agentLookup(bad, req)).rejects.toMatchObject({ code: 11, message: expect.stringContaining('(not JSON)') });
    await expect(agentLookup(bad, req)).rejects.toMatchObject({ code: 11, message: expect.stringContaining('field "settings.vlan"') });
    await expect(agentLookup(bad, req)).rejects.toMatchObject({ code: 11, message: expect.stringContaining(`more than ${MAX_ANSWER_BYTES} bytes without an end of line`) });
    await expect(agentLookup(bad, req)).rejects.toMatchObject({ code: 11, message: expect.stringContaining('closed in the middle of an answer') });
  });

  it('the server refuses a malformed request with a decode error', async () => {
    const sock = path.join(dir, 'agent.sock');
    server = await startCniSocket(sock, lookupHandler({ index: index(), log: silentLogger() }), silentLogger());
    const answer = await new Promise<string>((resolve) => {
      const c = net.createConnection(sock);
      let b = '';
      c.setEncoding('utf8');
      c.on('data', (d: string) => (b += d));
      c.on('end', () => resolve(b));
      c.write('{"v":1,"op":"lookup","namespace":"db"}\n');
    });
    const parsed = JSON.parse(answer) as { ok: boolean; code: number; message: string };
    expect(parsed.ok).toBe(false);
    expect(parsed.code).toBe(6);
    expect(parsed.message).toContain('field "name"');
  });

  it('agentPodSettings: no agentSocket in the netconf → no lookup at all (sriov-cni behaviour)', async () => {
    const conf = netconfSchema.parse({ cniVersion: '1.0.0', name: 'n', type: 'sriov-underlay' });
    const inv = { pod: { namespace: 'db', name: 'pg-0', uid: 'u' }, containerId: 'c', ifName: 'net1' } as unknown as Invocation;
    expect(await agentPodSettings(conf, inv)).toBeNull();
    const sock = path.join(dir, 'agent.sock');
    server = await startCniSocket(sock, lookupHandler({ index: index(), log: silentLogger() }), silentLogger());
    const withAgent = netconfSchema.parse({ cniVersion: '1.0.0', name: 'n', type: 'sriov-underlay', agentSocket: sock });
    expect((await agentPodSettings(withAgent, inv))?.ips).toEqual(['10.100.0.11/24']);
  });
});
