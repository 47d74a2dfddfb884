import { afterEach, describe, expect, it } from 'vitest';
import { LinkMonitor, Rtnl, type LinkInfo } from '../../src/netlink';
import { netnsInode } from '../../src/netns';
import { Scratch, ip, suffix } from './helpers/nl';

const scratch = new Scratch();
afterEach(() => scratch.cleanup());

/** Resolve with the first event matching pred; reject after a generous bound (not a timing goal). */
function next(mon: LinkMonitor, pred: (l: LinkInfo) => boolean, event: 'link' | 'dellink' = 'link'): Promise<LinkInfo> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no matching ${event} event within 20 s`)), 20_000);
    const on = (l: LinkInfo) => {
      if (!pred(l)) return;
      clearTimeout(t);
      mon.off(event, on);
      resolve(l);
    };
    mon.on(event, on);
  });
}

describe('LinkMonitor', () => {
  it('sees carrier go down and up when the veth peer goes down and up, in a netns', async () => {
    const ns = scratch.addNetns('mon');
    const s = suffix();
    const a = `nla${s}`;
    const b = `nlb${s}`;
    scratch.addVeth(a, b, ns.name, ns.name);
    ip('-n', ns.name, 'link', 'set', a, 'up');
    ip('-n', ns.name, 'link', 'set', b, 'up');
    const hostIno = netnsInode();
    const mon = LinkMonitor.open(ns.path);
    expect(netnsInode()).toBe(hostIno);
    try {
      const down = next(mon, (l) => l.name === a && !l.carrier);
      ip('-n', ns.name, 'link', 'set', b, 'down');
      const evDown = await down;
      expect(evDown).toMatchObject({ name: a, up: true, carrier: false, operUp: false });

      const up = next(mon, (l) => l.name === a && l.carrier);
      ip('-n', ns.name, 'link', 'set', b, 'up');
      expect((await up).carrier).toBe(true);

      const gone = next(mon, (l) => l.name === a, 'dellink');
      ip('-n', ns.name, 'link', 'del', a);
      expect((await gone).name).toBe(a);
    } finally {
      mon.close();
    }
  });

  it('does not keep the event loop busy: events arrive while other work runs, and close stops them', async () => {
    const s = suffix();
    const mon = LinkMonitor.open();
    const seen: string[] = [];
    mon.on('link', (l) => seen.push(l.name));
    try {
      const created = next(mon, (l) => l.name === `nla${s}`);
      scratch.addVeth(`nla${s}`, `nlb${s}`);
      await created;
      // the same socket kind answers requests meanwhile
      const rt = Rtnl.open();
      expect(rt.getLink(`nla${s}`)).not.toBeNull();
      rt.close();
    } finally {
      mon.close();
    }
    const count = seen.length;
    ip('link', 'set', `nla${s}`, 'mtu', '1300');
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.length).toBe(count);
    mon.close(); // idempotent
  });
});
