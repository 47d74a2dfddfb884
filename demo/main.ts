/**
 * `npm run demo` (after scripts/demo.sh has installed and built what it needs): the demo on this
 * host's kernel with emulated VFs. Exit code 0 only when every step passed and everything the demo
 * created is gone again; Ctrl-C (or SIGTERM) tears down first.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { runDemo, type Platform } from './flow';
import { hostPlatform, HOST_TAG_PREFIX, ipCmd } from './host';
import { Teardown } from './teardown';

const out = (line: string) => process.stdout.write(`${line}\n`);

/** netns and links of this run still present after teardown (names start with the run's tag). */
async function leftovers(tag: string): Promise<string[]> {
  const ns = (await ipCmd('netns', 'list')).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${tag}-`) || n === tag);
  const links = (JSON.parse(await ipCmd('-j', 'link', 'show')) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n.startsWith(tag));
  return [...ns.map((n) => `netns ${n}`), ...links.map((l) => `link ${l}`)];
}

/** The run's logs survive a failure (the work directory does not). */
function keepLogs(workDir: string, tag: string): string {
  const to = path.join(os.tmpdir(), `sriov-underlay-demo-logs-${tag}`);
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(path.join(workDir, 'logs'), to, { recursive: true });
  return to;
}

async function main(): Promise<number> {
  const repo = process.env.SRIOV_DEMO_REPO ?? path.resolve(__dirname, '..');
  if (process.getuid?.() !== 0) {
    out('the demo creates network namespaces and links: run it as root');
    return 2;
  }
  const teardown = new Teardown();
  let tag = HOST_TAG_PREFIX;
  let signalled: NodeJS.Signals | null = null;
  const finish = async (): Promise<boolean> => {
    out('\nteardown');
    const failures = await teardown.run();
    for (const f of failures) out(`  ! ${f}`);
    // Deleting a netns destroys its veths asynchronously: give the kernel a moment.
    let left = await leftovers(tag);
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      left = await leftovers(tag);
    }
    for (const l of left) out(`  ! left behind: ${l}`);
    if (failures.length === 0 && left.length === 0) out(`  ✓ node daemon, CNI server, fake kubelet and fake API stopped; netns, veths and the sysfs tree of ${tag} deleted`);
    return failures.length === 0 && left.length === 0;
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) return;
    signalled = sig;
    out(`\n${sig}: stopping the demo`);
    void finish().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let ok = true;
  let platform: Platform | undefined;
  try {
    platform = hostPlatform(repo, teardown);
    tag = platform.tag;
    out(`sriov-underlay demo (host mode, tag ${tag}): emulated VFs on this host's kernel`);
    await runDemo(platform, out, teardown);
  } catch (e) {
    ok = false;
    if (signalled) return new Promise(() => undefined); // the signal handler finishes and exits
    out(`\nDEMO FAILED: ${(e as Error).message}`);
    if (platform) out(`logs kept in ${keepLogs(platform.workDir, platform.tag)}`);
  }
  const clean = await finish();
  if (ok && clean) out('\ndemo complete');
  return ok && clean ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
