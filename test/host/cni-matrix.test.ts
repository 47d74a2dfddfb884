/**
 * Pins the CNI matrix's mode: the CNI files of the host tier run once with the CNI server up and once
 * with it down (scripts/test-all.sh), and nothing in them says which. This file proves which path
 * really served the calls of this run, from the served-by marker in the CNI's log: `server` from the
 * server, `fallback:<reason>` from the standalone the shim exec'd. A run misconfigured into the
 * other path (a missing server, a shim that ignores its socket, a fixture that bypasses the shim)
 * fails here instead of testing the wrong path in silence.
 */
import * as fs from 'node:fs';
import { expect, it } from 'vitest';
import { cniMode, cniSocket, runCni } from '../fixtures/cni';
import { cniBed } from '../fixtures/cni-bed';
import { GREETING, readGreeting, servedByInLog } from '../fixtures/cni-server-process';
import { linkNames, linkSnapshot } from '../fixtures/host-net';

const bed = cniBed({ tagPrefix: 'm', vfs: 1, network: 'pinnet' });

it(`the calls of this run are served by the path the matrix says (${cniMode()})`, async () => {
  const logFile = bed.logFile;
  const ns = bed.pod('pod');
  const conf = bed.netconf(0, { ipam: { type: 'static', addresses: [{ address: '10.68.0.2/24' }] } });
  const before = linkSnapshot(bed.vfName(0));
  const env = { containerId: 'pin', netns: ns.path, ifName: 'net1' };
  const add = await runCni('ADD', conf, env);
  expect(add.code, add.stdout + add.stderr).toBe(0);
  expect(linkNames(ns.name)).toContain('net1');
  const del = await runCni('DEL', conf, env);
  expect(del.code, del.stdout + del.stderr).toBe(0);
  expect(linkSnapshot(bed.vfName(0))).toEqual(before);

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
