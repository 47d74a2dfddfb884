/**
 * A root-only unix socket for the node daemon's components (the agent's socket, the CNI server's):
 * its directory 0700 (also when an older release made it wider), the socket 0600 from its first
 * instant (created under a 0177 umask), and a socket file left by a previous process replaced only
 * when nothing answers on it: two daemons never silently steal each other's socket.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/** What was found at the path before listening; for the start-up log. */
export type PriorSocket = 'none' | 'stale-replaced';

export async function listenRootOnly(server: net.Server, socketPath: string): Promise<PriorSocket> {
  const dir = path.dirname(socketPath);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} (the socket's directory) is not a directory; refusing to use it`);
  fs.chmodSync(dir, 0o700);
  const prior = await removeStaleSocket(socketPath);
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(socketPath, 0o600);
  return prior;
}

/** Close the server and remove its socket file, unless another process has replaced it since. */
export function closeRootOnly(server: net.Server, socketPath: string): Promise<void> {
  let ino: number | undefined;
  try {
    ino = fs.lstatSync(socketPath).ino;
  } catch {
    // already gone
  }
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    try {
      if (ino !== undefined && fs.lstatSync(socketPath).ino === ino) fs.unlinkSync(socketPath);
    } catch {
      // already gone
    }
  });
}

/** A socket file nobody listens on any more would make listen() fail with EADDRINUSE. */
async function removeStaleSocket(p: string): Promise<PriorSocket> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 'none';
  }
  if (!st.isSocket()) throw new Error(`${p} exists and is not a socket; refusing to replace it`);
  if (await answers(p)) throw new Error(`${p} is in use: another process is listening on it; refusing to replace it`);
  fs.unlinkSync(p);
  return 'stale-replaced';
}

function answers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.createConnection(p);
    const done = (live: boolean) => {
      clearTimeout(timer);
      c.destroy();
      resolve(live);
    };
    // A listener whose backlog is full still counts as live; one that never accepts within 1 s is
    // a hung process holding the path: refusing is the safe side (the supervisor restarts us).
    const timer = setTimeout(() => done(true), 1_000);
    c.once('connect', () => done(true));
    c.once('error', (e: NodeJS.ErrnoException) => done(e.code !== 'ECONNREFUSED' && e.code !== 'ENOENT'));
  });
}
