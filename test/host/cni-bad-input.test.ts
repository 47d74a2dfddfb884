/**
 * 1,000+ generated malformed netconfs through the real binary: each gets a CNI error JSON that names
 * the broken field, and nothing on the host changes.
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { runCni } from '../fixtures/cni';
import { cniBed } from '../fixtures/cni-bed';
import { linkNames, linkSnapshot } from '../fixtures/host-net';

const bed = cniBed({ tagPrefix: 'b', vfs: 1, network: 'bad' });

const notOnOff = fc.string().filter((s) => s !== 'on' && s !== 'off');
const badInt = (min: number, max: number) =>
  fc.oneof(fc.integer({ max: min - 1 }), fc.integer({ min: max + 1 }), fc.double({ noInteger: true, noNaN: true }), fc.string(), fc.boolean());
const badMac = fc.string().filter((s) => !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(s));
const relPath = fc.string({ minLength: 1 }).filter((s) => !s.startsWith('/'));

type Mutation = [string, (c: Record<string, unknown>) => void];
/** A corruption: the field path the error must name, and how to break a valid netconf. */
const mut = (field: string, f: (c: Record<string, unknown>) => void): Mutation => [field, f];

const corruption: fc.Arbitrary<Mutation> = fc.oneof(
  fc.oneof(fc.string().filter((s) => !/^\d+\.\d+\.\d+$/.test(s)), fc.integer()).map((v) => mut('cniVersion', (c) => (c.cniVersion = v))),
  fc.constant(mut('name', (c) => delete c.name)),
  fc.oneof(fc.constant(''), fc.integer()).map((v) => mut('type', (c) => (c.type = v))),
  fc.string().filter((s) => !/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(s)).map((v) => mut('deviceID', (c) => (c.deviceID = v))),
  badInt(0, 4094).map((v) => mut('vlan', (c) => (c.vlan = v))),
  badInt(0, 7).map((v) => mut('vlanQoS', (c) => (c.vlanQoS = v))),
  fc.integer({ min: 1, max: 7 }).map((v) => mut('vlanQoS', (c) => { delete c.vlan; c.vlanQoS = v; })),
  fc.string().filter((s) => !['802.1q', '802.1ad'].includes(s.toLowerCase())).map((v) => mut('vlanProto', (c) => (c.vlanProto = v))),
  badMac.map((v) => mut('mac', (c) => (c.mac = v))),
  notOnOff.map((v) => mut('spoofchk', (c) => (c.spoofchk = v))),
  notOnOff.map((v) => mut('trust', (c) => (c.trust = v))),
  fc.string().filter((s) => !['auto', 'enable', 'disable'].includes(s)).map((v) => mut('link_state', (c) => (c.link_state = v))),
  badInt(0, 1_000_000).map((v) => mut('max_tx_rate', (c) => (c.max_tx_rate = v))),
  badInt(0, 1_000_000).map((v) => mut('min_tx_rate', (c) => (c.min_tx_rate = v))),
  fc.integer({ min: 2, max: 10_000 }).map((v) => mut('min_tx_rate', (c) => { c.max_tx_rate = v - 1; c.min_tx_rate = v; })),
  badInt(68, 65535).map((v) => mut('mtu', (c) => (c.mtu = v))),
  fc.string().filter((s) => !['panic', 'error', 'warning', 'info', 'debug'].includes(s)).map((v) => mut('logLevel', (c) => (c.logLevel = v))),
  relPath.map((v) => mut('sysfsRoot', (c) => (c.sysfsRoot = v))),
  relPath.map((v) => mut('stateDir', (c) => (c.stateDir = v))),
  fc.oneof(fc.string(), fc.integer()).map((v) => mut('ipam', (c) => (c.ipam = v))),
  fc.oneof(fc.constant(''), fc.integer()).map((v) => mut('ipam.type', (c) => (c.ipam = { type: v }))),
  badMac.map((v) => mut('runtimeConfig.mac', (c) => (c.runtimeConfig = { mac: v }))),
);

it('rejects 1,000 malformed netconfs naming the field, changing nothing', async () => {
  const ns = bed.pod('pod');
  const before = linkSnapshot(bed.vfName(0));
  const samples = fc.sample(corruption, { numRuns: 1000, seed: 20261123 });
  const check = async ([field, mutate]: Mutation) => {
    // No log file: 1,000 refusals would only fill it.
    const conf = bed.netconf(0, { logFile: '', logLevel: undefined, vlan: 10, ipam: { type: 'static', addresses: [{ address: '10.9.0.2/24' }] } });
    mutate(conf);
    const r = await runCni('ADD', conf, { containerId: 'bad', netns: ns.path, ifName: 'net1' });
    expect(r.code, JSON.stringify(conf)).toBe(1);
    expect(r.json, r.stdout).toMatchObject({ code: expect.any(Number), msg: expect.any(String) });
    expect(r.json?.msg, JSON.stringify(conf)).toContain(`field "${field}"`);
  };
  // Four at a time: bounded load on a 2-core machine.
  for (let i = 0; i < samples.length; i += 4) await Promise.all(samples.slice(i, i + 4).map(check));
  expect(linkSnapshot(bed.vfName(0))).toEqual(before);
  expect(linkNames(ns.name)).toEqual(['lo']);
  const vfs = path.join(bed.stateDir, 'vfs');
  expect(fs.existsSync(vfs) ? fs.readdirSync(vfs) : []).toEqual([]);
}, 600_000);
