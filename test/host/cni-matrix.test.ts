/**
 * Pins the CNI matrix's mode: the CNI files of the host tier run once with the CNI server up and once
 * with it down (scripts/test-all.sh), and nothing in them says which. This file proves which path
 * really served the calls of this run, from the served-by marker in the CNI's log: `server` from the
 * server, `fallback:<reason>` from the standalone the shim exec'd. A run misconfigured into the
 * other path (a missing server, a shim that ignores its socket, a fixture that bypasses the shim)
 * fails here instead of testing the wrong path in silence.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cniMode, cniSocket, requireBinary, runCni } from '../fixtures/cni';
import { GREETING, readGreeting, servedByInLog } from '../fixtures/cni-server-process';
import { linkNames, linkSnapshot, makeNetns, uniqueTag, type NetnsHandle } from '../fixtures/host-net';
import { createEmulatedNic, type EmulatedNic } from '../fixtures/sysfs-tree';

let nic: EmulatedNic;
let tmp: string;
let ns: NetnsHandle;
const tag = uniqueTag('m');

beforeAll(() => {
  requireBinary();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-matrix-pin-'));
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 1 });
  ns = makeNetns(`${tag}-pod`);
});
afterAll(() => {
  ns?.destroy();
  nic?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

it(`the calls of this run are served by the path the matrix says (${cniMode()})`, async () => {
  const logFile = path.join(tmp, 'cni.log');
  const conf = {
    cniVersion: '1.0.0',
    name: 'pinnet',
    type: 'sriov-underlay',
    deviceID: nic.vfAddrs[0],
    sysfsRoot: nic.root,
    stateDir: path.join(tmp, 'state'),
    logFile,
    logLevel: 'debug',
    ipam: { type: 'static', addresses: [{ address: '10.68.0.2/24' }] },
  };
  const before = linkSnapshot(`${tag}p0v0`);
  const env = { containerId: 'pin', netns: ns.path, ifName: 'net1' };
  const add = await runCni('ADD', conf, env);
  expect(add.code, add.stdout + add.stderr).toBe(0);
  expect(linkNames(ns.name)).toContain('net1');
  const del = await runCni('DEL', conf, env);
  expect(del.code, del.stdout + del.stderr).toBe(0);
  expect(linkSnapshot(`${tag}p0v0`)).toEqual(before);

  const marks = servedByInLog(logFile);
  // Two calls, each logs at least once with its marker.
  expect(marks.length, `served-by markers in ${logFile}`).toBeGreaterThanOrEqual(2);
  if (cniMode() === 'server') {
    expect(await readGreeting(cniSocket()), 'the server greets on the socket the shim is given').toBe(GREETING);
    expect(new Set(marks)).toEqual(new Set(['server']));
  } else {
    expect(fs.existsSync(cniSocket()), 'nothing at the fallback socket path').toBe(false);
    expect(new Set(marks)).toEqual(new Set(['fallback:no-socket']));
  }
});
