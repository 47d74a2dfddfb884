/**
 * cni/exec-plugin.ts on real processes: what an exec'd IPAM plugin gets (stdin, exactly its
 * environment, stdio and no other fd, its own session, default signals) and how it is ended.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { execPlugin, PLUGIN_OUTPUT_MAX_BYTES } from '../../cni/exec-plugin';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'exec-plugin-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function script(body: string): string {
  const f = path.join(tmp, `p${n++}.sh`);
  fs.writeFileSync(f, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return f;
}

const ENV = { PATH: '/usr/bin:/bin', CNI_COMMAND: 'ADD' };
const fdCount = () => fs.readdirSync('/proc/self/fd').length;

/** Whether the `sleep` at `pid` is gone (or a zombie) within 2 s. */
async function sleepGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
    if (stat === '' || / Z /.test(stat) || !stat.includes('(sleep)')) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

describe('execPlugin', () => {
  it('feeds stdin, collects stdout and stderr, reports the exit status', async () => {
    const big = Buffer.alloc(PLUGIN_OUTPUT_MAX_BYTES, 'x'); // far past a pipe's buffer, and the whole bound
    const r = await execPlugin(script('cat; echo oops >&2; exit 3'), ENV, big).done;
    expect(r.code).toBe(3);
    expect(r.stdout.equals(big)).toBe(true);
    expect(r.stderr.toString()).toBe('oops\n');
  });

  it('passes exactly the given environment, nothing of ours', async () => {
    process.env.EXEC_PLUGIN_LEAK = 'ours';
    try {
      const r = await execPlugin(script('printenv CNI_COMMAND; printenv EXEC_PLUGIN_LEAK; echo "rc=$?"'), ENV, Buffer.alloc(0)).done;
      expect(r.stdout.toString()).toBe('ADD\nrc=1\n');
    } finally {
      delete process.env.EXEC_PLUGIN_LEAK;
    }
  });

  it('the program gets its stdio on pipes and none of our fds (ours are close-on-exec)', async () => {
    const held = path.join(tmp, 'held');
    const fd = fs.openSync(held, 'w'); // an fd of ours that must not reach the program
    try {
      const r = await execPlugin(script('cd /proc/self/fd && for f in *; do echo "$f $(readlink $f)"; done'), ENV, Buffer.alloc(0)).done;
      const fds = new Map(r.stdout.toString().trim().split('\n').map((l) => l.split(' ') as [string, string]));
      for (const n of ['0', '1', '2']) expect(fds.get(n)).toMatch(/^pipe:/);
      // The shell's own handle on its script is the only file of this dir it may hold.
      expect([...fds.values()].filter((t) => t.startsWith(tmp) && !t.endsWith('.sh'))).toEqual([]);
      expect(fds.size).toBeLessThan(fdCount()); // ours: the runner's many sockets, the addon, this file
    } finally {
      fs.closeSync(fd);
    }
  });

  it('runs in its own session and process group, with no signal ignored or blocked (Node ignores SIGPIPE)', async () => {
    // The shell reads its own status with builtins: a child reading it races the shell's vfork,
    // around which dash blocks every signal until the child has exec'd (seen once under load).
    const r = await execPlugin(
      script('set -- $(cut -d" " -f5,6 /proc/$$/stat); echo "$$ $1 $2"; while read -r l; do case "$l" in SigIgn*|SigBlk*) echo "$l";; esac; done < /proc/$$/status'),
      ENV,
      Buffer.alloc(0),
    ).done;
    const [ids, ...sig] = r.stdout.toString().trim().split('\n');
    const [pid, pgrp, sid] = (ids ?? '').split(' ');
    expect(pgrp).toBe(pid);
    expect(sid).toBe(pid);
    expect(sig.sort()).toEqual(['SigBlk:\t0000000000000000', 'SigIgn:\t0000000000000000']);
  });

  it('kill() ends the whole process group, grandchildren too, and settles', async () => {
    const pidFile = path.join(tmp, 'grandchild.pid');
    const p = execPlugin(script(`sleep 60 & echo $! > ${pidFile}; wait`), ENV, Buffer.alloc(0));
    for (let i = 0; i < 500 && !fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 10));
    const grandchild = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(grandchild).toBeGreaterThan(1);
    p.kill();
    const r = await p.done;
    expect(r.code).toBeNull(); // ended by a signal
    expect(await sleepGone(grandchild)).toBe(true);
  });

  it.each(['stdout', 'stderr'])('a program that writes without end to its %s is killed past the bound, its whole group with it', async (stream) => {
    const pidFile = path.join(tmp, `endless-${stream}.pid`);
    // A grandchild that outlives nothing: it must die with the group.
    const p = execPlugin(script(`sleep 60 & echo $! > ${pidFile}; yes ${stream === 'stderr' ? '>&2' : ''}`), ENV, Buffer.alloc(0));
    await expect(p.done).rejects.toThrow(`its ${stream} grew past ${PLUGIN_OUTPUT_MAX_BYTES} bytes; killed`);
    const grandchild = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(await sleepGone(grandchild)).toBe(true);
  });

  it('stdin reaches its end while the caller is still blocked after the call (as ADD is, in the netns move)', () => {
    const mark = path.join(tmp, 'read-to-eof');
    const p = execPlugin(script(`cat >/dev/null; touch ${mark}`), ENV, Buffer.from('{"cniVersion":"1.0.0"}'));
    // No event-loop turn from here: the EOF must not wait for one.
    const until = Date.now() + 10_000;
    while (!fs.existsSync(mark) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    expect(fs.existsSync(mark)).toBe(true);
    return p.done;
  });

  it('a program that exits without reading a large stdin is no error', async () => {
    const r = await execPlugin(script('exit 0'), ENV, Buffer.alloc(4 * 1024 * 1024)).done;
    expect(r.code).toBe(0);
  });

  it('refuses hostile input clearly and leaks no fd: a NUL byte in the environment, a missing or non-executable program', async () => {
    const before = fdCount();
    await expect(execPlugin(script('exit 0'), { ...ENV, X: 'a\u0000b' }, Buffer.alloc(0)).done).rejects.toThrow(/NUL byte/);
    await expect(execPlugin(path.join(tmp, 'missing'), ENV, Buffer.alloc(0)).done).rejects.toMatchObject({ code: 'ENOENT' });
    const notExec = path.join(tmp, 'plain');
    fs.writeFileSync(notExec, '#!/bin/sh\n', { mode: 0o644 });
    await expect(execPlugin(notExec, ENV, Buffer.alloc(0)).done).rejects.toMatchObject({ code: 'EACCES' });
    expect(fdCount()).toBe(before);
  });

  it('many at once: each gets its own stdin back', async () => {
    const cat = script('cat');
    const outs = await Promise.all(Array.from({ length: 32 }, (_, i) => execPlugin(cat, ENV, Buffer.from(`call ${i}`)).done));
    expect(outs.map((o) => o.stdout.toString())).toEqual(Array.from({ length: 32 }, (_, i) => `call ${i}`));
    expect(outs.every((o) => o.code === 0)).toBe(true);
  });
});
