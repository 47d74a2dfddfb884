/**
 * The CNI server runs many calls at once on one JS thread that switches netns (setns is per
 * thread). This proves no call ever sees another's netns: 32 concurrent ADDs into 32 pod netns on
 * 32 emulated VFs, each VF checked to be in its own pod with its own address, then 32 concurrent
 * DELs that restore every VF exactly. And a peer that vanishes mid-call never leaves a VF half-moved.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cniBed, eventually } from '../fixtures/cni-bed';
import { callEnv, rawExchange, request, serverCall, startServerProcess, type ServerProcess } from '../fixtures/cni-server';
import { ipJson, linkNames, linkSnapshot } from '../fixtures/host-net';

const N = 32;
const bed = cniBed({ tagPrefix: 'q', vfs: N + 2, network: 'par' });
const { pod, vfName } = bed;
let server: ServerProcess;
const stateDir = () => bed.stateDir;
const netconf = (vf: number, ipam: Record<string, unknown>) => bed.netconf(vf, { logLevel: 'info', ipam });
const staticIp = (k: number) => ({ type: 'static', addresses: [{ address: `10.81.${k}.${10 + k}/16` }] });


interface IpAddr {
  ifname: string;
  address: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

beforeAll(async () => {
  server = await startServerProcess(path.join(bed.tmp, 'run', 'cni.sock'));
});

afterAll(async () => {
  await server?.stop();
});

describe('32 concurrent calls in one server', () => {
  it('32 ADDs into 32 netns: every VF in its own pod with its own address; 32 DELs restore every VF exactly', async () => {
    const ks = Array.from({ length: N }, (_, k) => k);
    const befores = ks.map((k) => linkSnapshot(vfName(k))!);
    const pods = ks.map((k) => pod(`p${k}`));
    const adds = await Promise.all(ks.map((k) => serverCall(server.socketPath, 'ADD', netconf(k, staticIp(k)), { containerId: `c-${k}`, netns: pods[k]!.path, ifName: 'net1' })));
    adds.forEach((a, k) => expect(a.exitCode, `ADD ${k}: ${a.stdout}`).toBe(0));
    for (const k of ks) {
      // In its own pod: exactly lo and net1 there, net1 is this VF (its MAC) with this pod's address.
      expect(linkNames(pods[k]!.name).sort()).toEqual(['lo', 'net1']);
      const [a] = ipJson<IpAddr[]>('-n', pods[k]!.name, 'addr', 'show', 'dev', 'net1');
      expect(a!.address).toBe(befores[k]!.address);
      expect(a!.addr_info.filter((i) => i.family === 'inet').map((i) => `${i.local}/${i.prefixlen}`)).toEqual([`10.81.${k}.${10 + k}/16`]);
      expect(linkSnapshot(vfName(k))).toBeNull(); // gone from the host
      expect(adds[k]!.json).toMatchObject({ interfaces: [{ name: 'net1', mac: befores[k]!.address, sandbox: pods[k]!.path }], ips: [{ address: `10.81.${k}.${10 + k}/16` }] });
      const rec = JSON.parse(fs.readFileSync(path.join(stateDir(), 'vfs', `${bed.nic.vfAddrs[k]}.json`), 'utf8')) as { netns: string; containerId: string; phase: string };
      expect(rec).toMatchObject({ netns: pods[k]!.path, containerId: `c-${k}`, phase: 'ready' });
    }
    const dels = await Promise.all(ks.map((k) => serverCall(server.socketPath, 'DEL', netconf(k, staticIp(k)), { containerId: `c-${k}`, netns: pods[k]!.path, ifName: 'net1' })));
    dels.forEach((d, k) => expect(d.exitCode, `DEL ${k}: ${d.stdout}`).toBe(0));
    for (const k of ks) {
      expect(linkSnapshot(vfName(k))).toEqual(befores[k]);
      expect(linkNames(pods[k]!.name)).toEqual(['lo']);
    }
  }, 120_000);
});

describe('a peer that vanishes mid-call', () => {
  it('ADD completes in the server; the VF is whole in the pod, and DEL restores it exactly', async () => {
    const k = N;
    const p = pod('gone');
    const before = linkSnapshot(vfName(k));
    const conf = netconf(k, staticIp(k));
    // As the shim does: read the greeting, send the whole request, then hang up at once (kubelet
    // killed it), before any reply. (A client that hangs up before the greeting never was a shim:
    // the greeting write then fails and the server drops the connection, request unread.)
    const x = await rawExchange(server.socketPath, [request(callEnv('ADD', { containerId: 'c-gone', netns: p.path, ifName: 'net1' }), JSON.stringify(conf))], { hangUp: true, afterGreeting: true });
    expect(x.ended).toBe('hung-up'); // we left first
    await eventually(() => expect(server.stderr()).toMatch(/"container":"c-gone","result":"ok".*"call served"/), 30_000); // a bound, not a goal: the machine may be loaded
    expect(linkNames(p.name).sort()).toEqual(['lo', 'net1']);
    const rec = JSON.parse(fs.readFileSync(path.join(stateDir(), 'vfs', `${bed.nic.vfAddrs[k]}.json`), 'utf8')) as { phase: string };
    expect(rec.phase).toBe('ready');
    const del = await serverCall(server.socketPath, 'DEL', conf, { containerId: 'c-gone', netns: p.path, ifName: 'net1' });
    expect(del.exitCode, del.stdout).toBe(0);
    expect(linkSnapshot(vfName(k))).toEqual(before);
  });

  it('an ADD that fails after the move rolls back in full although nobody waits for its answer', async () => {
    const k = N + 1;
    const p = pod('gone2');
    const before = linkSnapshot(vfName(k));
    const cniPath = path.join(bed.tmp, 'failing-ipam');
    fs.mkdirSync(cniPath, { recursive: true });
    // Answers after the VF has moved (IPAM is awaited after the move), with an error.
    fs.writeFileSync(path.join(cniPath, 'failipam'), '#!/bin/sh\nsleep 0.5\necho \'{"cniVersion":"1.0.0","code":11,"msg":"pool exhausted"}\'\nexit 1\n', { mode: 0o755 });
    const conf = netconf(k, { type: 'failipam' });
    const env = { ...callEnv('ADD', { containerId: 'c-gone2', netns: p.path, ifName: 'net1' }), CNI_PATH: cniPath };
    expect((await rawExchange(server.socketPath, [request(env, JSON.stringify(conf))], { hangUp: true, afterGreeting: true })).ended).toBe('hung-up');
    await eventually(() => expect(server.stderr()).toMatch(/"container":"c-gone2","result":"error-11".*"call served"/), 30_000); // a bound, not a goal: the machine may be loaded
    expect(linkSnapshot(vfName(k))).toEqual(before);
    expect(linkNames(p.name)).toEqual(['lo']);
    expect(fs.existsSync(path.join(stateDir(), 'vfs', `${bed.nic.vfAddrs[k]}.json`))).toBe(false);
  });
});
