// Standalone fake apiserver for the demo and the VM tier:
//   node test/fakes/kube-apiserver/run.mjs --port 6443 --kubeconfig /tmp/kubeconfig [--host 0.0.0.0]
//     [--history-limit N] [--no-auth] [--token T] [--tls] [--node-token NODE=TOKEN]... [--pod-finalize-after-ms N]
// Prints one JSON line {"url","kubeconfig","pid"} on stdout when ready; test controls are under
// /_fake/* on the same port (see server.ts `admin`).
import { serviceAccountUser } from './auth';
import { writeKubeconfig } from './kubeconfig';
import { FakeKubeApiServer, type FakeKubeOptions } from './server';

function parseArgs(argv: string[]): { opts: FakeKubeOptions; kubeconfig?: string; advertise?: string } {
  const opts: FakeKubeOptions = {};
  let kubeconfig: string | undefined;
  let advertise: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = () => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 0) throw new Error(`${flag} needs a non-negative integer`);
      return v;
    };
    switch (flag) {
      case '--port': opts.port = int(); break;
      case '--host': opts.host = value(); break;
      case '--kubeconfig': kubeconfig = value(); break;
      case '--advertise-url': advertise = value(); break;
      case '--history-limit': opts.historyLimit = int(); break;
      case '--token': opts.token = value(); break;
      case '--no-auth': opts.token = null; break;
      case '--tls': opts.tls = true; break;
      case '--node-token': {
        // NODE=TOKEN: the node daemon's service account token of a pod on NODE (node-bound, as kube ≥ 1.30 issues it)
        const [node, token] = value().split('=');
        if (!node || !token) throw new Error('--node-token needs NODE=TOKEN');
        opts.users = { ...opts.users, [token]: serviceAccountUser('sriov-underlay', 'sriov-underlay-node', node) };
        break;
      }
      case '--pod-finalize-after-ms': opts.podFinalizeAfterMs = int(); break;
      case '--bookmark-interval-ms': opts.bookmarkIntervalMs = int(); break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  return { opts, kubeconfig, advertise };
}

async function main(): Promise<void> {
  const { opts, kubeconfig, advertise } = parseArgs(process.argv.slice(2));
  // The serving certificate must also name the advertised address (a VM reaches the host there).
  if (opts.tls && advertise) opts.tlsHosts = [new URL(advertise).hostname];
  const server = new FakeKubeApiServer(opts);
  await server.start();
  // --advertise-url lets a VM reach the host's fake at an address other than the bind address.
  if (kubeconfig) writeKubeconfig(kubeconfig, { server: advertise ?? server.url, token: server.token, caPem: server.caPem });
  process.stdout.write(`${JSON.stringify({ url: server.url, kubeconfig: kubeconfig ?? null, pid: process.pid })}\n`);
  const shutdown = () => void server.close().then(() => process.exit(0));
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake-apiserver: ${(err as Error).message}\n`);
  process.exit(2);
});
