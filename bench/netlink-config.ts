/**
 * What the CNI does inside a pod netns, on this layer: open an rtnetlink socket in the netns, set
 * MAC/MTU/up in one request, add an IPv4 and an IPv6 address, add two routes. Prints p50/p90/mean
 * in ms. Run through bench/netlink.mjs (bundles this file, sets up the netns).
 */
import { Rtnl } from '../src/netlink';

const [nsPath, dev, iterArg] = process.argv.slice(2) as [string, string, string | undefined];
const iterations = Number(iterArg ?? 300);

function configure(): Rtnl {
  const rt = Rtnl.openIn(nsPath);
  const idx = rt.getLink(dev)!.index;
  rt.setLink(idx, { mac: '02:00:5e:00:53:01', mtu: 1400, up: true });
  rt.addAddr(idx, '192.0.2.10/24');
  rt.addAddr(idx, '2001:db8::10/64', { nodad: true });
  rt.addRoute({ dst: 'default', gw: '192.0.2.1', index: idx });
  rt.addRoute({ dst: 'default', gw: '2001:db8::1', index: idx });
  return rt;
}

function undo(rt: Rtnl): void {
  const idx = rt.getLink(dev)!.index;
  rt.delRoute({ dst: 'default', gw: '192.0.2.1', index: idx });
  rt.delRoute({ dst: 'default', gw: '2001:db8::1', index: idx });
  rt.delAddr(idx, '192.0.2.10/24');
  rt.delAddr(idx, '2001:db8::10/64');
  rt.setLink(idx, { up: false });
  rt.close();
}

const times: number[] = [];
for (let i = 0; i < iterations + 20; i++) {
  const t0 = process.hrtime.bigint();
  const rt = configure();
  const t1 = process.hrtime.bigint();
  undo(rt);
  if (i >= 20) times.push(Number(t1 - t0) / 1e6); // first 20: warm-up
}
times.sort((a, b) => a - b);
const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(3);
const mean = (times.reduce((a, b) => a + b, 0) / times.length).toFixed(3);
console.log(JSON.stringify({ bench: 'in-netns configuration (openIn, setLink mac/mtu/up, 2 addrs, 2 routes)', iterations, p50ms: q(0.5), p90ms: q(0.9), meanMs: mean }));
