/** Scratch netns and veth pairs for the netlink host tests, all tagged `nl` + a random suffix. */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

/** A fresh suffix: 5 hex chars keep `nl` + role + suffix within IFNAMSIZ. */
export function suffix(): string {
  return randomBytes(3).toString('hex').slice(0, 5);
}

export class Scratch {
  readonly netns: string[] = [];
  readonly hostLinks: string[] = [];

  addNetns(role: string): { name: string; path: string } {
    const name = `nl-${role}-${suffix()}`;
    ip('netns', 'add', name);
    this.netns.push(name);
    return { name, path: `/var/run/netns/${name}` };
  }

  /** A veth pair; each end created in the given netns (undefined: the host's). */
  addVeth(a: string, b: string, nsA?: string, nsB?: string): void {
    const args = nsA ? ['-n', nsA] : [];
    ip(...args, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, ...(nsB ? ['netns', nsB] : []));
    if (!nsA) this.hostLinks.push(a);
    if (!nsB) this.hostLinks.push(b);
  }

  cleanup(): void {
    for (const l of this.hostLinks.splice(0)) {
      try {
        ip('link', 'del', l);
      } catch {
        // gone with its peer or moved away
      }
    }
    for (const n of this.netns.splice(0)) {
      try {
        ip('netns', 'del', n);
      } catch {
        // already gone
      }
    }
  }
}

export function ifindexIn(ns: string | undefined, dev: string): number {
  const out = ip(...(ns ? ['-n', ns] : []), '-o', 'link', 'show', 'dev', dev);
  return Number(out.split(':')[0]);
}
