// Benchmarks for the rtnetlink layer: in-netns configuration time and module load time.
// Usage: node bench/netlink.mjs   (root; builds nothing but a bundle under dist/bench)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'bench');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { 'netlink-config': path.join(root, 'bench/netlink-config.ts'), 'netlink-lib': path.join(root, 'src/netlink/index.ts') },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outdir: out,
  logLevel: 'error',
});
// NODE_EXTRA_CA_CERTS costs ~48 ms per node start here and is irrelevant to us.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const run = (args) => execFileSync(process.execPath, args, { env, encoding: 'utf8' }).trim();

const sfx = randomBytes(3).toString('hex');
const ns = `nl-bench-${sfx}`;
const dev = `nlbA${sfx}`;
execFileSync('ip', ['netns', 'add', ns]);
try {
  execFileSync('ip', ['-n', ns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `nlbB${sfx}`]);
  execFileSync('ip', ['-n', ns, 'link', 'set', `nlbB${sfx}`, 'up']);
  console.log(run([path.join(out, 'netlink-config.js'), `/var/run/netns/${ns}`, dev, process.env.ITER ?? '300']));

  // Module load: require the bundled layer and make the first call (dlopen of the addon included).
  const loads = [];
  for (let i = 0; i < 21; i++) {
    const code = `const t0=process.hrtime.bigint();const m=require(${JSON.stringify(path.join(out, 'netlink-lib.js'))});const t1=process.hrtime.bigint();const rt=m.Rtnl.open();rt.getLink(1);rt.close();const t2=process.hrtime.bigint();console.log(JSON.stringify({requireMs:Number(t1-t0)/1e6,firstCallMs:Number(t2-t1)/1e6}))`;
    loads.push(JSON.parse(run(['-e', code])));
  }
  const sorted = (k) => loads.map((l) => l[k]).sort((a, b) => a - b);
  const med = (k) => sorted(k)[Math.floor(loads.length / 2)].toFixed(3);
  const min = (k) => sorted(k)[0].toFixed(3);
  // min: the cost on a quiet machine; p50 includes whatever else the host is doing
  console.log(
    JSON.stringify({
      bench: 'module load (bundled src/netlink)',
      requireMsMin: min('requireMs'),
      requireMsP50: med('requireMs'),
      firstCallIncludingDlopenMsMin: min('firstCallMs'),
      firstCallIncludingDlopenMsP50: med('firstCallMs'),
    }),
  );

  // For contrast: one `ip` process per operation.
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 20; i++) execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'mtu', String(1300 + i)]);
  console.log(JSON.stringify({ bench: 'spawn `ip -n ns link set` (per call)', meanMs: (Number(process.hrtime.bigint() - t0) / 1e6 / 20).toFixed(3) }));
} finally {
  execFileSync('ip', ['netns', 'del', ns]);
}
