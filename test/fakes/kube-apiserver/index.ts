// Entry point for tests: start a fake apiserver on 127.0.0.1:<free port> with a kubeconfig file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { writeKubeconfig } from './kubeconfig';
import { FakeKubeApiServer, type FakeKubeOptions } from './server';

export { FakeKubeApiServer } from './server';
export type { Counters, FakeKubeOptions, InjectedFailure, RequestLogEntry, Verb } from './server';
export type { FieldError, KubeObject } from './types';
export { ADMIN, NODE_NAME_EXTRA, serviceAccountUser, type UserInfo } from './auth';
export { kubeconfigYaml, writeKubeconfig } from './kubeconfig';

export interface FakeKube {
  server: FakeKubeApiServer;
  kubeconfigPath: string;
  url: string;
  /** A kubeconfig file for another user of the fake (a token given in `users` or `addUser`). */
  kubeconfigFor(token: string, name: string): string;
  /** Stops the server and removes the kubeconfig's temporary directory. */
  close(): Promise<void>;
}

export async function startFakeKube(opts: FakeKubeOptions & { kubeconfigPath?: string } = {}): Promise<FakeKube> {
  const server = new FakeKubeApiServer(opts);
  await server.start();
  const dir = opts.kubeconfigPath ? undefined : mkdtempSync(join(tmpdir(), 'fakekube-'));
  const kubeconfigPath = opts.kubeconfigPath ?? join(dir!, 'kubeconfig');
  writeKubeconfig(kubeconfigPath, { server: server.url, token: server.token, caPem: server.caPem });
  return {
    server,
    kubeconfigPath,
    url: server.url,
    kubeconfigFor(token, name) {
      const d = dir ?? dirname(kubeconfigPath);
      const path = join(d, `kubeconfig-${name}`);
      writeKubeconfig(path, { server: server.url, token, caPem: server.caPem });
      return path;
    },
    async close() {
      await server.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
