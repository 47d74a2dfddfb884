/** Network namespaces and the datapath checks of the VM scenarios (iproute2 + busybox ping). */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { BUSYBOX, IP, ip, run, waitFor } from './sh';

/** `<tag><4 hex>`: unique names, short enough for interface names too. */
export const uniq = (tag: string): string => `${tag}${randomBytes(2).toString('hex')}`;

export const netnsPath = (ns: string): string => `/run/netns/${ns}`;

export async function netnsAdd(ns: string): Promise<string> {
  await ip('netns', 'add', ns);
  return netnsPath(ns);
}

export async function netnsDel(ns: string): Promise<void> {
  if (existsSync(netnsPath(ns))) await ip('netns', 'del', ns);
}

/** Move a host netdev into `ns`, renamed to `newName`, in one request (like the CNI does). */
export const moveTo = (dev: string, ns: string, newName = dev): Promise<string> =>
  ip('link', 'set', 'dev', dev, 'netns', ns, 'name', newName);

export async function addrUp(ns: string, dev: string, cidr: string): Promise<void> {
  await ip('-n', ns, 'addr', 'add', cidr, 'dev', dev);
  await ip('-n', ns, 'link', 'set', 'dev', dev, 'up');
  await ip('-n', ns, 'link', 'set', 'dev', 'lo', 'up');
}

/** Wait for the netdev in `ns` to report carrier (igbvf needs the PF link and its mailbox). */
export const waitCarrier = (ns: string, dev: string): Promise<boolean> =>
  waitFor(`carrier on ${dev} in ${ns}`, async () => {
    const r = await run(IP, ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
    if (r.code !== 0) return false;
    const [l] = JSON.parse(r.stdout) as { operstate?: string }[];
    return l?.operstate === 'UP';
  }, 60_000, 250);

/** True when `count` echo requests from `ns` to `addr` get at least one reply. */
export async function ping(ns: string, addr: string, count = 3): Promise<boolean> {
  const r = await run(IP, ['netns', 'exec', ns, BUSYBOX, 'ping', '-c', String(count), '-W', '2', addr], {
    timeoutMs: 10_000 + count * 3_000,
  });
  return r.code === 0;
}

/** The netdev `dev` inside `ns` as iproute2 sees it (null when absent). */
export async function linkIn(ns: string, dev: string): Promise<{ ifname: string; address: string; mtu: number; operstate: string } | null> {
  const r = await run(IP, ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
  if (r.code !== 0) return null;
  const [l] = JSON.parse(r.stdout) as { ifname: string; address: string; mtu: number; operstate: string }[];
  return l ?? null;
}

export async function addrsIn(ns: string, dev: string): Promise<string[]> {
  const [l] = JSON.parse(await ip('-n', ns, '-j', 'addr', 'show', 'dev', dev)) as {
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  return (l?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
}
