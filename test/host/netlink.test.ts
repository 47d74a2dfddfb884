import * as fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NetlinkError, Rtnl } from '../../src/netlink';
import { CniCode } from '../../src/errors';
import { netnsInode, openNetns } from '../../src/netns';
import { Scratch, ifindexIn, ip, suffix } from './helpers/nl';

let scratch: Scratch;
let hostIno: number;
beforeEach(() => {
  scratch = new Scratch();
  hostIno = netnsInode();
});
afterEach(() => {
  scratch.cleanup();
  // no test may leave the process in another netns
  expect(netnsInode()).toBe(hostIno);
});

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

/**
 * A veth nlh<s> (peer nlp<s>) on the host, a scratch pod netns, a host rtnetlink socket and an fd
 * of the pod netns, the last two closed after `fn`.
 */
async function vethAndPod(fn: (v: { s: string; host: string; pod: { name: string; path: string }; rt: Rtnl; podFd: number }) => unknown): Promise<void> {
  const s = suffix();
  const host = `nlh${s}`;
  scratch.addVeth(host, `nlp${s}`);
  const pod = scratch.addNetns('pod');
  const rt = Rtnl.open();
  const podFd = openNetns(pod.path);
  try {
    await fn({ s, host, pod, rt, podFd });
  } finally {
    fs.closeSync(podFd);
    rt.close();
  }
}

describe('links', () => {
  it('moves and renames in one request into a netns, and back', () => {
    const s = suffix();
    const host = `nlh${s}`;
    const peer = `nlp${s}`;
    const podName = `nle${s}`;
    scratch.addVeth(host, peer);
    const pod = scratch.addNetns('pod');
    const rt = Rtnl.open();
    const podFd = openNetns(pod.path);
    try {
      const before = rt.getLink(host);
      expect(before).not.toBeNull();
      rt.setLink(before!.index, { netnsFd: podFd, name: podName });
      // gone from the host under both names; present in the pod under the new name only
      expect(rt.getLink(host)).toBeNull();
      expect(rt.getLink(podName)).toBeNull();
      const prt = Rtnl.openIn(pod.path);
      try {
        const inPod = prt.getLink(podName);
        expect(inPod?.mac).toBe(before?.mac);
        expect(prt.getLink(host)).toBeNull();
        // and back home under the original name, in one request from inside the pod
        const homeFd = openNetns('/proc/self/ns/net');
        try {
          prt.setLink(inPod!.index, { netnsFd: homeFd, name: host });
        } finally {
          fs.closeSync(homeFd);
        }
        expect(prt.getLink(podName)).toBeNull();
      } finally {
        prt.close();
      }
      expect(rt.getLink(host)?.mac).toBe(before?.mac);
    } finally {
      fs.closeSync(podFd);
      rt.close();
    }
  });

  // Kernel behaviour the CNI must handle: do_setlink moves the device first (keeping its name when
  // that is free in the target) and renames it afterwards, so a taken new name fails with EEXIST
  // AFTER the move. The device is then in the target netns under its old name, same ifindex.
  it('a move whose new name is taken in the target: EEXIST, device left in the target under its old name', () => {
    const s = suffix();
    const host = `nlh${s}`;
    scratch.addVeth(host, `nlp${s}`);
    const pod = scratch.addNetns('pod');
    ip('-n', pod.name, 'link', 'add', `nlt${s}`, 'type', 'veth', 'peer', 'name', `nlu${s}`);
    const rt = Rtnl.open();
    const podFd = openNetns(pod.path);
    const homeFd = openNetns('/proc/self/ns/net');
    try {
      const idx = rt.getLink(host)!.index;
      const e = caught(() => rt.setLink(idx, { netnsFd: podFd, name: `nlt${s}` })) as NetlinkError;
      expect(e).toBeInstanceOf(NetlinkError);
      expect(e.errnoName).toBe('EEXIST');
      expect(e.op).toMatch(new RegExp(`^set link (ifindex ${idx}|${host}) netns fd ${podFd} name nlt${s}$`));
      expect(rt.getLink(idx)).toBeNull();
      const prt = Rtnl.openIn(pod.path);
      try {
        const there = prt.getLink(host);
        expect(there).not.toBeNull();
        // recovery: bring it home from inside the target
        prt.setLink(there!.index, { netnsFd: homeFd });
      } finally {
        prt.close();
      }
      expect(rt.getLink(host)).not.toBeNull();
    } finally {
      fs.closeSync(podFd);
      fs.closeSync(homeFd);
      rt.close();
    }
  });

  it('moveLink is all or nothing: on that EEXIST the device is moved back home before the throw', async () => {
    const s = suffix();
    const host = `nlh${s}`;
    scratch.addVeth(host, `nlp${s}`);
    const pod = scratch.addNetns('pod');
    ip('-n', pod.name, 'link', 'add', `nlt${s}`, 'type', 'veth', 'peer', 'name', `nlu${s}`);
    const rt = Rtnl.open();
    const podFd = openNetns(pod.path);
    try {
      const idx = rt.getLink(host)!.index;
      const e = (await rt.moveLink(idx, podFd, `nlt${s}`).then(() => null, (err: unknown) => err)) as NetlinkError;
      expect(e.errnoName).toBe('EEXIST');
      expect(rt.getLink(idx)?.name).toBe(host);
      expect(ip('-n', pod.name, '-o', 'link', 'show')).not.toContain(host);
      // and it works when the name is free, also from a socket opened in another netns
      await rt.moveLink(idx, podFd, `nle${s}`);
      const prt = Rtnl.openIn(pod.path);
      const homeFd = openNetns('/proc/self/ns/net');
      try {
        const inPod = prt.getLink(`nle${s}`);
        expect(inPod).not.toBeNull();
        // home again under a third name (free on the host, though taken in the pod by the other veth)
        await prt.moveLink(inPod!.index, homeFd, `nlu${s}`);
        expect(rt.getLink(`nlu${s}`)?.mac).toBe(inPod!.mac);
        scratch.hostLinks.push(`nlu${s}`);
      } finally {
        fs.closeSync(homeFd);
        prt.close();
      }
    } finally {
      fs.closeSync(podFd);
      rt.close();
    }
  });

  it('moveLink from a socket opened in a netns rolls back into that netns', async () => {
    const s = suffix();
    const a = scratch.addNetns('ma');
    const b = scratch.addNetns('mb');
    ip('-n', a.name, 'link', 'add', `nlh${s}`, 'type', 'veth', 'peer', 'name', `nlp${s}`);
    ip('-n', b.name, 'link', 'add', `nlt${s}`, 'type', 'veth', 'peer', 'name', `nlu${s}`);
    const rt = Rtnl.openIn(a.path);
    const bFd = openNetns(b.path);
    try {
      const idx = rt.getLink(`nlh${s}`)!.index;
      const mac = rt.getLink(idx)!.mac;
      await expect(rt.moveLink(idx, bFd, `nlt${s}`)).rejects.toThrow(/EEXIST/);
      // back under its name; its ifindex took a detour through b, where idx was taken
      expect(rt.getLink(`nlh${s}`)?.mac).toBe(mac);
      expect(ip('-n', b.name, '-o', 'link', 'show')).toContain(`nlt${s}`);
      expect(ip('-n', b.name, '-o', 'link', 'show')).not.toContain(`nlh${s}`);
    } finally {
      fs.closeSync(bFd);
      rt.close();
    }
  });

  it('moveLink runs `during` while the kernel moves the device; the socket takes no other request until then', () =>
    vethAndPod(async ({ s, host, pod, rt, podFd }) => {
      const idx = rt.getLink(host)!.index;
      let busy: unknown = null;
      let ran = 0;
      await rt.moveLink(idx, podFd, `nle${s}`, () => {
        ran++;
        busy = caught(() => rt.getLink(idx));
      });
      expect(ran).toBe(1);
      expect((busy as Error).message).toMatch(/busy with a move/);
      expect(rt.getLink(idx)).toBeNull(); // usable again, and the device is gone from here
      expect(ip('-n', pod.name, '-o', 'link', 'show')).toContain(`nle${s}`);
      // A socket closed during the move keeps its fd until the send is back, then closes it.
      const prt = Rtnl.openIn(pod.path);
      const homeFd = openNetns('/proc/self/ns/net');
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const before = fds();
      try {
        await prt.moveLink(prt.getLink(`nle${s}`)!.index, homeFd, host, () => prt.close());
      } catch (e) {
        expect(String(e)).toMatch(/closed|EBADF/); // the reply cannot be read from a closed socket
      }
      expect(fds()).toBe(before - 1);
      fs.closeSync(homeFd);
      expect(rt.getLink(host)).not.toBeNull();
    }));

  it('when the old name is taken in the target, the new name is used for the move itself', () =>
    vethAndPod(async ({ s, host, pod, rt, podFd }) => {
      ip('-n', pod.name, 'link', 'add', host, 'type', 'veth', 'peer', 'name', `nlu${s}`);
      const idx = rt.getLink(host)!.index;
      rt.setLink(idx, { netnsFd: podFd, name: `nle${s}` });
      const prt = Rtnl.openIn(pod.path);
      try {
        expect(prt.getLink(`nle${s}`)).not.toBeNull();
        expect(prt.listLinks().some((l) => l.name === host && l.kind === 'veth' && l.index !== 0)).toBe(true); // the other one
      } finally {
        prt.close();
      }
    }));

  it('altnames travel with the device into the netns', () =>
    vethAndPod(async ({ s, host, pod, rt, podFd }) => {
      const idx = rt.getLink(host)!.index;
      rt.addAltname(idx, `nlx${s}`);
      rt.setLink(idx, { netnsFd: podFd, name: `nle${s}` });
      expect(rt.getLink(`nlx${s}`)).toBeNull();
      const prt = Rtnl.openIn(pod.path);
      try {
        expect(prt.getLink(`nle${s}`)?.altnames).toEqual([`nlx${s}`]);
      } finally {
        prt.close();
      }
    }));

  it('sets mac, mtu and up in one request and reads them back', () => {
    const s = suffix();
    scratch.addVeth(`nla${s}`, `nlb${s}`);
    const rt = Rtnl.open();
    try {
      const idx = ifindexIn(undefined, `nla${s}`);
      rt.setLink(idx, { mac: '02:00:5e:10:20:30', mtu: 1280, up: true });
      const l = rt.getLink(idx);
      expect(l).toMatchObject({ mac: '02:00:5e:10:20:30', mtu: 1280, up: true, kind: 'veth' });
      expect(ip('-o', 'link', 'show', 'dev', `nla${s}`)).toContain('mtu 1280');
      rt.setLink(idx, { up: false });
      expect(rt.getLink(idx)?.up).toBe(false);
      expect(rt.listLinks().some((x) => x.index === idx && x.name === `nla${s}`)).toBe(true);
    } finally {
      rt.close();
    }
  });

  it('a refused setLink names the op, errno and the kernel reason', () => {
    const s = suffix();
    scratch.addVeth(`nla${s}`, `nlb${s}`);
    const rt = Rtnl.open();
    try {
      const e = caught(() => rt.setLink(ifindexIn(undefined, `nla${s}`), { mtu: 20 })) as NetlinkError;
      expect(e).toBeInstanceOf(NetlinkError);
      expect(e.errno).toBe(22);
      expect(e.errnoName).toBe('EINVAL');
      expect(e.op).toBe(`set link nla${s} mtu 20`);
      expect(e.extack).toMatch(/mtu/i);
      expect(e.code).toBe(CniCode.NetlinkFailure);
    } finally {
      rt.close();
    }
  });
});

describe('altnames', () => {
  it('renaming to an altname of the same device fails with EEXIST until the altname is deleted', () => {
    const s = suffix();
    const a = `nla${s}`;
    const alt = `nlx${s}`;
    scratch.addVeth(a, `nlb${s}`);
    const rt = Rtnl.open();
    try {
      const idx = ifindexIn(undefined, a);
      rt.addAltname(idx, alt);
      expect(rt.getLink(idx)?.altnames).toEqual([alt]);
      // lookup by altname works too
      expect(rt.getLink(alt)?.index).toBe(idx);
      // the #445 failure: the wanted name is taken by the device's own altname
      const e = caught(() => rt.setLink(idx, { name: alt })) as NetlinkError;
      expect(e).toBeInstanceOf(NetlinkError);
      expect(e.errnoName).toBe('EEXIST');
      expect(e.op).toContain(`name ${alt}`);
      // the fix: drop the altname, then rename
      rt.delAltname(idx, alt);
      rt.setLink(idx, { name: alt });
      expect(rt.getLink(idx)).toMatchObject({ name: alt, altnames: [] });
      scratch.hostLinks.push(alt);
    } finally {
      rt.close();
    }
  });

  it('deleting an altname that is not there is a NetlinkError', () => {
    const s = suffix();
    scratch.addVeth(`nla${s}`, `nlb${s}`);
    const rt = Rtnl.open();
    try {
      const e = caught(() => rt.delAltname(ifindexIn(undefined, `nla${s}`), `nlq${s}`)) as NetlinkError;
      expect(e).toBeInstanceOf(NetlinkError);
      expect(e.op).toBe(`delete altname nlq${s} from nla${s}`);
      expect(e.errno).toBeGreaterThan(0);
    } finally {
      rt.close();
    }
  });
});

describe('addresses and routes in a netns', () => {
  it('adds, lists and deletes v4/v6 addresses and routes', () => {
    const ns = scratch.addNetns('ar');
    const s = suffix();
    scratch.addVeth(`nla${s}`, `nlb${s}`, ns.name, ns.name);
    const rt = Rtnl.openIn(ns.path);
    try {
      const idx = rt.getLink(`nla${s}`)!.index;
      const peer = rt.getLink(`nlb${s}`)!.index;
      rt.setLink(idx, { up: true });
      rt.setLink(peer, { up: true });
      rt.addAddr(idx, '192.0.2.10/24');
      rt.addAddr(idx, '2001:db8:10::10/64', { nodad: true });
      rt.addRoute({ dst: '198.51.100.0/24', gw: '192.0.2.1', index: idx });
      rt.addRoute({ dst: 'default', gw: '192.0.2.1', index: idx, metric: 10 });
      rt.addRoute({ dst: '2001:db8:20::/48', gw: '2001:db8:10::1', index: idx });
      rt.addRoute({ dst: 'default', family: 6, gw: '2001:db8:10::1', index: idx });
      rt.addRoute({ dst: '203.0.113.0/24', gw: '10.99.0.1', index: idx, onlink: true });

      const addrs = rt.listAddrs(idx);
      expect(addrs.map((a) => a.cidr)).toEqual(expect.arrayContaining(['192.0.2.10/24', '2001:db8:10::10/64']));
      expect(addrs.find((a) => a.cidr === '2001:db8:10::10/64')?.tentative).toBe(false);
      expect(rt.listAddrs(idx, 4).every((a) => a.family === 4)).toBe(true);

      const r4 = rt.listRoutes(4);
      expect(r4).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ dst: '198.51.100.0/24', gw: '192.0.2.1', index: idx }),
          expect.objectContaining({ dst: 'default', gw: '192.0.2.1', metric: 10 }),
          expect.objectContaining({ dst: '203.0.113.0/24', gw: '10.99.0.1', onlink: true }),
        ]),
      );
      expect(rt.listRoutes(6)).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ dst: '2001:db8:20::/48', gw: '2001:db8:10::1' }),
          expect.objectContaining({ dst: 'default', gw: '2001:db8:10::1' }),
        ]),
      );
      // same view from iproute2
      expect(ip('-n', ns.name, 'route', 'show', 'default')).toContain('via 192.0.2.1');
      expect(ip('-n', ns.name, '-6', 'route', 'show')).toContain('2001:db8:20::/48 via 2001:db8:10::1');

      // adding twice: EEXIST, naming what was asked
      const dup = caught(() => rt.addAddr(idx, '192.0.2.10/24')) as NetlinkError;
      expect(dup.errnoName).toBe('EEXIST');
      expect(dup.op).toBe(`add address 192.0.2.10/24 to nla${s}`);

      rt.delRoute({ dst: '198.51.100.0/24', gw: '192.0.2.1', index: idx });
      rt.delAddr(idx, '192.0.2.10/24');
      expect(rt.listRoutes(4).some((r) => r.dst === '198.51.100.0/24')).toBe(false);
      expect(rt.listAddrs(idx).some((a) => a.cidr === '192.0.2.10/24')).toBe(false);
    } finally {
      rt.close();
    }
  });

  it('a bad route carries the kernel extack message', () => {
    const ns = scratch.addNetns('rx');
    const s = suffix();
    scratch.addVeth(`nla${s}`, `nlb${s}`, ns.name, ns.name);
    const rt = Rtnl.openIn(ns.path);
    try {
      const idx = rt.getLink(`nla${s}`)!.index;
      rt.setLink(idx, { up: true });
      const e = caught(() => rt.addRoute({ dst: '198.51.100.7/24', index: idx })) as NetlinkError;
      expect(e.errnoName).toBe('EINVAL');
      expect(e.extack).toBeTruthy();
      expect(e.message).toContain(e.extack as string);
    } finally {
      rt.close();
    }
  });

  it('a tentative IPv6 address is visible as tentative, then settles', async () => {
    const ns = scratch.addNetns('dad');
    const s = suffix();
    scratch.addVeth(`nla${s}`, `nlb${s}`, ns.name, ns.name);
    const rt = Rtnl.openIn(ns.path);
    try {
      const idx = rt.getLink(`nla${s}`)!.index;
      rt.setLink(rt.getLink(`nlb${s}`)!.index, { up: true });
      rt.setLink(idx, { up: true });
      rt.addAddr(idx, '2001:db8:30::1/64');
      const now = rt.listAddrs(idx, 6).find((a) => a.cidr === '2001:db8:30::1/64');
      expect(now?.tentative).toBe(true);
      const deadline = Date.now() + 20_000;
      let settled = false;
      while (!settled && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        settled = rt.listAddrs(idx, 6).find((a) => a.cidr === '2001:db8:30::1/64')?.tentative === false;
      }
      expect(settled).toBe(true);
    } finally {
      rt.close();
    }
  });
});

describe('VF operations on a device without SR-IOV', () => {
  it('each VF setting is refused with a NetlinkError naming the op and errno', () => {
    const s = suffix();
    scratch.addVeth(`nla${s}`, `nlb${s}`);
    const rt = Rtnl.open();
    try {
      const idx = ifindexIn(undefined, `nla${s}`);
      const attempts: [Parameters<Rtnl['setVf']>[2], string][] = [
        [{ mac: '02:00:00:00:00:01' }, 'mac'],
        [{ vlan: 100, qos: 3, vlanProto: '802.1ad' }, 'vlan'],
        [{ spoofchk: false }, 'spoofchk'],
        [{ trust: true }, 'trust'],
        [{ linkState: 'disable' }, 'state'],
        [{ minTxRate: 10, maxTxRate: 100 }, 'min_tx_rate/max_tx_rate'],
      ];
      for (const [patch, what] of attempts) {
        const e = caught(() => rt.setVf(idx, 0, patch)) as NetlinkError;
        expect(e).toBeInstanceOf(NetlinkError);
        expect(e.op).toBe(`set vf 0 ${what} on nla${s}`);
        expect(e.errnoName).toBe('EOPNOTSUPP');
        expect(e.message).toContain(`set vf 0 ${what} on nla${s}: EOPNOTSUPP`);
      }
      // one rate alone needs the other read back first; veth has no VF table to read it from
      const e = caught(() => rt.setVf(idx, 0, { maxTxRate: 100 })) as NetlinkError;
      expect(e.op).toBe(`set vf 0 max_tx_rate on nla${s}`);
      expect(e.extack).toMatch(/no VF table/);
      // and veth reports no VF table at all
      expect(rt.getLink(idx, { vfs: true })?.vfs).toBeUndefined();
    } finally {
      rt.close();
    }
  });

  it('the first refused setting stops the sequence (mac before vlan)', () => {
    const s = suffix();
    scratch.addVeth(`nla${s}`, `nlb${s}`);
    const rt = Rtnl.open();
    try {
      const e = caught(() => rt.setVf(ifindexIn(undefined, `nla${s}`), 2, { mac: '02:00:00:00:00:01', vlan: 5 })) as NetlinkError;
      expect(e.op).toBe(`set vf 2 mac on nla${s}`);
    } finally {
      rt.close();
    }
  });
});

describe('sockets', () => {
  it('openIn leaves the caller in its netns, even when the netns is missing', () => {
    const e = caught(() => Rtnl.openIn('/var/run/netns/nl-missing-00000'));
    expect((e as Error).message).toMatch(/ENOENT/);
    expect(netnsInode()).toBe(hostIno);
  });

  it('a closed socket refuses requests', () => {
    const rt = Rtnl.open();
    rt.close();
    expect(() => rt.getLink(1)).toThrow(/closed/);
  });
});
