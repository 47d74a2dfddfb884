import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsError, currentNetnsFd, netnsInode, readSysctl, withNetns, writeSysctl } from '../../src/netns';
import { Scratch, ip } from './helpers/nl';

const scratch = new Scratch();
let ns: { name: string; path: string };
let hostIno: number;

beforeAll(() => {
  hostIno = netnsInode();
  ns = scratch.addNetns('ns');
});
afterAll(() => scratch.cleanup());

describe('withNetns', () => {
  it('runs fn inside the target netns and comes back', () => {
    const inside = withNetns(ns.path, () => netnsInode());
    expect(inside).toBe(netnsInode(ns.path));
    expect(inside).not.toBe(hostIno);
    expect(netnsInode()).toBe(hostIno);
  });

  it('comes back when fn throws', () => {
    expect(() =>
      withNetns(ns.path, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(netnsInode()).toBe(hostIno);
  });

  it('refuses an async fn, after coming back', () => {
    expect(() => withNetns(ns.path, async () => 1)).toThrow(/synchronous/);
    expect(netnsInode()).toBe(hostIno);
  });

  it('nests, and accepts an open fd', () => {
    const other = scratch.addNetns('ns2');
    const fd = fs.openSync(other.path, 'r');
    try {
      const seen = withNetns(ns.path, () => [netnsInode(), withNetns(fd, () => netnsInode()), netnsInode()]);
      expect(seen).toEqual([netnsInode(ns.path), netnsInode(other.path), netnsInode(ns.path)]);
      expect(netnsInode()).toBe(hostIno);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a missing netns gives a NetnsError with ENOENT and changes nothing', () => {
    let err: unknown;
    try {
      withNetns('/var/run/netns/nl-missing-00000', () => 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetnsError);
    expect((err as NetnsError).sysCode).toBe('ENOENT');
    expect(netnsInode()).toBe(hostIno);
  });

  it('leaks no file descriptors', () => {
    const before = fs.readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 20; i++) withNetns(ns.path, () => 0);
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
  });

  it('currentNetnsFd names the current netns', () => {
    const fd = currentNetnsFd();
    try {
      expect(netnsInode(fd)).toBe(hostIno);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('sysctl inside a netns', () => {
  it('writeSysctl inside withNetns changes the target netns only', () => {
    const key = 'net.ipv4.conf.all.arp_notify';
    const hostBefore = readSysctl(key);
    const want = hostBefore === '1' ? '0' : '1';
    withNetns(ns.path, () => writeSysctl(key, want));
    expect(withNetns(ns.path, () => readSysctl(key))).toBe(want);
    // seen the same way by iproute2's netns exec
    expect(ip('netns', 'exec', ns.name, 'cat', '/proc/sys/net/ipv4/conf/all/arp_notify').trim()).toBe(want);
    expect(readSysctl(key)).toBe(hostBefore);
  });

  it('array keys allow dots in interface names', () => {
    ip('-n', ns.name, 'link', 'add', 'nlv.10', 'type', 'veth', 'peer', 'name', 'nlv.11');
    withNetns(ns.path, () => writeSysctl(['net', 'ipv6', 'conf', 'nlv.10', 'ndisc_notify'], 1));
    expect(ip('netns', 'exec', ns.name, 'cat', '/proc/sys/net/ipv6/conf/nlv.10/ndisc_notify').trim()).toBe('1');
  });

  it('a bad key is refused before touching anything', () => {
    expect(() => writeSysctl(['net', '..', 'x'], 1)).toThrow(/invalid sysctl key/);
    expect(() => readSysctl('net.ipv4.nl_no_such_key')).toThrow(/cannot read sysctl/);
  });
});
