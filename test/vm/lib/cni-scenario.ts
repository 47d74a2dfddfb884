/** Shared set-up for the CNI scenarios: the VFs, the binary, a state dir and pod netns. */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { servedByInLog, startCniServer } from '../../fixtures/cni-server-process';
import { Cni, describe, netconf, type Attachment, type CniOutcome, type Netconf, type NetconfOptions } from './cni';
import { netnsAdd, netnsDel, netnsPath, uniq } from './netns';
import type { Ctx } from './scenario';
import { findPf, pfUp, setNumVfs, vfLines, vfNetdevState, type NetdevState } from './sriov';
import type { T } from './tap';

export interface CniBed {
  pf: string;
  vfs: string[];
  cni: Cni;
  stateDir: string;
  logFile: string;
  /** Netconf for VF `i` with the contract's example values and `overrides`. */
  conf(i: number, address: string, overrides?: Partial<NetconfOptions>): Netconf;
  /** A fresh pod: netns (deleted at teardown) and a random container ID. */
  pod(ifname?: string): Promise<Attachment>;
}

export async function cniBed({ t, project, outDir, defer }: Ctx, numVfs: number): Promise<CniBed> {
  const pf = await t.step('PF found', () => findPf());
  const vfs = await t.step(`${numVfs} VFs created`, () => setNumVfs(pf, numVfs));
  // max_tx_rate needs the PF link (igb reads the link speed).
  await t.step('PF up with carrier', () => pfUp(pf));
  const stateDir = '/run/vmtest/cni-state';
  mkdirSync(stateDir, { recursive: true });
  const logFile = `${outDir}/cni.log`;
  // The CNI matrix (docs/testing.md): with the server up, the shim forwards every call to the real
  // CNI server started here; with it down, the shim finds nothing at the socket and execs the
  // standalone. The runtime's environment allows the test's state and log dirs (netconf alone cannot).
  const mode = process.env.SRIOV_UNDERLAY_TEST_CNI ?? 'fallback';
  const socket = mode === 'server' ? '/run/vmtest/cni-server/cni.sock' : '/run/vmtest/no-cni-server/cni.sock';
  if (mode === 'server') {
    const server = await t.step('CNI server up (matrix: server)', () =>
      startCniServer({ socket, logFile: `${outDir}/cni-server.log`, bin: `${project}/dist/bin/sriov-underlay-node`, readyMs: 60_000 }),
    );
    defer(async () => {
      const died = server.exited() ? `${server.child.exitCode ?? server.child.signalCode}` : null;
      await server.stop();
      t.ok(died === null, 'the CNI server ran through the whole scenario', `it exited (${died}); see cni-server.log`);
    });
  }
  const cni = new Cni(`${project}/dist/bin/sriov-underlay`, [stateDir, outDir], { SRIOV_UNDERLAY_CNI_SOCKET: socket });
  // Pin the mode: every call this scenario made was served by the path the matrix says.
  defer(() => {
    const marks = servedByInLog(logFile);
    const want = mode === 'server' ? 'server' : 'fallback:no-socket';
    const wrong = marks.filter((m) => m !== want);
    t.ok(marks.length > 0 && wrong.length === 0, `every call was served by ${want}`, `${marks.length} markers in cni.log, others: ${[...new Set(wrong)].join(', ')}`);
  });
  return {
    pf,
    vfs,
    cni,
    stateDir,
    logFile,
    conf: (i, address, overrides = {}) => netconf({ deviceID: vfs[i]!, stateDir, logFile, address, ...overrides }),
    async pod(ifname = 'net1') {
      const ns = uniq('vtc');
      defer(() => netnsDel(ns));
      await netnsAdd(ns);
      return { containerId: randomBytes(16).toString('hex'), netns: netnsPath(ns), ifname, podName: ns };
    },
  };
}

/** Everything DEL must give back: the PF's whole VF line, and the VF netdev's name, MAC and MTU. */
export interface VfSnapshot {
  line: string;
  netdev: NetdevState | null;
}

/** The PF and its VFs, as a CNI bed or the runtime tier has them. */
export type VfBed = Pick<CniBed, 'pf' | 'vfs'>;

export async function snapshot(bed: VfBed, i: number): Promise<VfSnapshot> {
  return { line: (await vfLines(bed.pf))[i] ?? '(no VF line)', netdev: vfNetdevState(bed.vfs[i]!) };
}

/** Assert the VF is exactly as `before` (whole VF line, netdev name, MAC, MTU). */
export async function assertRestored(t: T, bed: VfBed, i: number, before: VfSnapshot, what: string): Promise<void> {
  const now = await snapshot(bed, i);
  t.equal(now.line, before.line, `${what}: VF ${i}'s line on the PF is identical`);
  t.equal(now.netdev, before.netdev, `${what}: VF ${i}'s netdev is back with its name, MAC and MTU`);
}

/** Assert a CNI call exited 0; on failure the message carries its stdout/stderr. */
export function assertOk(t: T, o: CniOutcome, name: string): boolean {
  return t.ok(o.code === 0, name, describe(o));
}

export const nsName = (a: Attachment): string => a.netns.replace(/^\/run\/netns\//, '');
