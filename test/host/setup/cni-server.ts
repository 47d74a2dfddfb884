/**
 * Global setup of the host project: in the CNI matrix's server mode (SRIOV_UNDERLAY_TEST_CNI=server)
 * start the real CNI server once for the whole run and publish its socket to the test files
 * (test/fixtures/cni.ts reads it); stop it afterwards. Fallback mode starts nothing.
 *
 * A server that dies during the run fails the teardown, so a crash never passes unseen (the tests
 * that kill servers on purpose start their own).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CNI_SERVER_SOCKET_ENV, cniMode } from '../../fixtures/cni';
import { startCniServer, type CniServer } from '../../fixtures/cni-server-process';

let server: CniServer | null = null;
let dir = '';

export async function setup(): Promise<void> {
  if (cniMode() !== 'server') return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-matrix-'));
  const logFile = process.env.SRIOV_UNDERLAY_TEST_CNI_SERVER_LOG ?? path.join(dir, 'server.log');
  server = await startCniServer({ socket: path.join(dir, 'run', 'cni.sock'), logFile });
  // Vitest starts its workers after the global setup: they inherit this.
  process.env[CNI_SERVER_SOCKET_ENV] = server.socket;
  process.stderr.write(`CNI matrix: server mode, CNI server pid ${server.pid()} on ${server.socket}, log ${logFile}\n`);
}

export async function teardown(): Promise<void> {
  if (!server) return;
  const died = server.exited() ? `${server.child.exitCode ?? server.child.signalCode}` : null;
  await server.stop();
  if (died !== null) throw new Error(`the CNI server of the matrix died during the run (${died}); log ${server.logFile}`);
  fs.rmSync(dir, { recursive: true, force: true });
}
