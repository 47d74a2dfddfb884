/**
 * The CNI shim (native/cni-shim.c) against test peers that speak docs/cni-server-protocol.md and
 * inject one fault each, and against a fake standalone CNI beside it that records what it was
 * exec'd with. The shipped build (dist/bin/sriov-underlay) is used where its bounds do not matter;
 * the faults that wait for a bound run a build of the same source with short bounds and
 * AddressSanitizer + UBSan, so a memory error is a failing test, not a silent corruption.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { answering, GREETING, listen, readRequest, replyBytes, runShim, type ShimRun, type TestServer } from './helpers/shim-server';

const ROOT = path.resolve(__dirname, '..', '..');
const SHIPPED = path.join(ROOT, 'dist', 'bin', 'sriov-underlay');
const STANDALONE = path.join(ROOT, 'dist', 'bin', 'sriov-underlay-cni');
const SOURCE = path.join(ROOT, 'native', 'cni-shim.c');
const GREETING_MS = 300;
const REPLY_MS = 1500;
const NETCONF = '{"cniVersion":"1.0.0","name":"n","type":"sriov-underlay"}';
const FAKE_EXIT = 42;

/** Records its env (NUL separated), argv and stdin beside itself, prints a marker, exits 42. */
const FAKE_STANDALONE = `
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
extern char **environ;
static FILE *beside(const char *self, const char *name) {
  char p[PATH_MAX + 32];
  snprintf(p, sizeof p, "%s/%s", self, name);
  return fopen(p, "w");
}
int main(int argc, char **argv) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 2;
  self[n] = 0;
  *strrchr(self, '/') = 0;
  FILE *f = beside(self, "seen.env");
  for (char **e = environ; *e; e++) { fputs(*e, f); fputc(0, f); }
  fclose(f);
  f = beside(self, "seen.argv");
  for (int i = 0; i < argc; i++) { fputs(argv[i], f); fputc(0, f); }
  fclose(f);
  f = beside(self, "seen.stdin");
  char buf[65536];
  ssize_t r;
  while ((r = read(0, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)r, f);
  fclose(f);
  fputs("{\\"fake\\":\\"standalone\\"}", stdout);
  return ${FAKE_EXIT};
}
`;

let scratch: string;
/** The shipped shim copied beside the fake standalone CNI. */
let shippedDir: string;
/** A short-bounds ASan/UBSan build beside another fake standalone CNI. */
let fastDir: string;
let servers: TestServer[] = [];

function sock(name: string): string {
  return path.join(scratch, `${name}.sock`);
}

function baseEnv(socketPath: string, command = 'ADD', extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/bin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c0ffee',
    CNI_NETNS: '/var/run/netns/x',
    CNI_IFNAME: 'net1',
    CNI_PATH: '/opt/cni/bin',
    SRIOV_UNDERLAY_CNI_SOCKET: socketPath,
    ...extra,
  };
}

async function serve(name: string, onConnection: Parameters<typeof listen>[1]): Promise<TestServer> {
  const s = await listen(sock(name), onConnection);
  servers.push(s);
  return s;
}

/** What the fake standalone CNI in dir recorded, then forgotten for the next call. */
function seen(dir: string): { env: string[]; argv: string[]; stdin: Buffer } | null {
  const envFile = path.join(dir, 'seen.env');
  if (!fs.existsSync(envFile)) return null;
  const split = (b: Buffer): string[] => b.toString('latin1').split('\0').slice(0, -1);
  const out = {
    env: split(fs.readFileSync(envFile)),
    argv: split(fs.readFileSync(path.join(dir, 'seen.argv'))),
    stdin: fs.readFileSync(path.join(dir, 'seen.stdin')),
  };
  for (const f of ['seen.env', 'seen.argv', 'seen.stdin']) fs.rmSync(path.join(dir, f));
  return out;
}

function servedBy(dir: string): string | undefined {
  return seen(dir)
    ?.env.find((e) => e.startsWith('SRIOV_UNDERLAY_SERVED_BY='))
    ?.slice('SRIOV_UNDERLAY_SERVED_BY='.length);
}

/** Never a signal (a crash), and either a forward, a fallback or a CNI error JSON. */
function expectNoCrash(r: ShimRun): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.stderr, 'ASan/UBSan report').not.toMatch(/Sanitizer|runtime error/);
}

function cniError(r: ShimRun): { cniVersion: string; code: number; msg: string; details?: string } {
  expectNoCrash(r);
  expect(r.code).toBe(1);
  const text = r.stdout.toString('utf8');
  expect(text.endsWith('\n')).toBe(true);
  const e = JSON.parse(text) as { cniVersion: string; code: number; msg: string; details?: string };
  expect(Object.keys(e).filter((k) => !['cniVersion', 'code', 'msg', 'details'].includes(k))).toEqual([]);
  return e;
}

beforeAll(() => {
  expect(fs.existsSync(SHIPPED), `${SHIPPED} missing: run npm run build`).toBe(true);
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-'));
  const fakeSrc = path.join(scratch, 'fake.c');
  fs.writeFileSync(fakeSrc, FAKE_STANDALONE);
  shippedDir = path.join(scratch, 'shipped');
  fastDir = path.join(scratch, 'fast');
  for (const d of [shippedDir, fastDir]) {
    fs.mkdirSync(d);
    execFileSync('gcc', ['-O1', '-o', path.join(d, 'sriov-underlay-cni'), fakeSrc]);
  }
  fs.copyFileSync(SHIPPED, path.join(shippedDir, 'sriov-underlay'));
  fs.chmodSync(path.join(shippedDir, 'sriov-underlay'), 0o755);
  execFileSync('gcc', [
    '-std=gnu11', '-O1', '-g', '-Wall', '-Wextra', '-Werror',
    '-fsanitize=address,undefined', '-fno-sanitize-recover=all',
    `-DGREETING_MS=${GREETING_MS}`, `-DREPLY_MS=${REPLY_MS}`,
    '-o', path.join(fastDir, 'sriov-underlay'), SOURCE,
  ]);
}, 120_000);

afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  for (const d of [shippedDir, fastDir]) seen(d);
});

afterAll(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

const shipped = (): string => path.join(shippedDir, 'sriov-underlay');
const fast = (): string => path.join(fastDir, 'sriov-underlay');

describe('relay: stdout and exit code byte for byte', () => {
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  for (const [code, stdout] of [
    [0, Buffer.from('{"cniVersion":"1.0.0","interfaces":[]}\n')],
    [1, Buffer.concat([every, every])],
    [7, Buffer.alloc(0)],
    [255, Buffer.from('no newline at the end\0\0')],
  ] as const) {
    it(`exit ${code}, ${stdout.length} bytes`, async () => {
      const s = await serve(`relay${code}`, answering(code, stdout));
      const env = baseEnv(s.path, 'ADD', {
        HOME: '/root',
        OTHER: 'not forwarded',
        SRIOV_UNDERLAY_PATH_PREFIXES: '/tmp',
        // keys the server refuses: left out, so they cannot fail the call
        CNI_lower: 'x',
        'CNI_A-B': 'x',
        'SRIOV_UNDERLAY_\u00e9': 'x',
      });
      const r = await runShim(shipped(), env, NETCONF);
      expectNoCrash(r);
      expect(r.code).toBe(code);
      expect(r.stdout.equals(stdout)).toBe(true);
      expect(servedBy(shippedDir), 'the fallback ran').toBeUndefined();
      expect(s.requests).toHaveLength(1);
      const req = s.requests[0]!;
      expect(req.stdin.toString()).toBe(NETCONF);
      const forwarded = Object.entries(env)
        .filter(([k]) => /^(CNI_|SRIOV_UNDERLAY_)[A-Z0-9_]*$/.test(k))
        .map(([k, v]) => `${k}=${v}`);
      expect(req.env.map((b) => b.toString())).toEqual(forwarded);
    });
  }

  it('a 1 MiB stdout (the bound) and a 1 MiB binary stdin (the bound) pass whole', async () => {
    const stdout = Buffer.alloc(1 << 20, 0xa5);
    const stdin = Buffer.alloc(1 << 20);
    for (let i = 0; i < stdin.length; i++) stdin[i] = (i * 7919) & 0xff;
    const s = await serve('mib', answering(3, stdout));
    const r = await runShim(shipped(), baseEnv(s.path), stdin);
    expectNoCrash(r);
    expect(r.code).toBe(3);
    expect(r.stdout.equals(stdout)).toBe(true);
    expect(s.requests[0]!.stdin.equals(stdin)).toBe(true);
  });
});

describe('the server cannot take the call: fallback, with the reason', () => {
  it('socket path missing', async () => {
    const r = await runShim(shipped(), baseEnv(sock('absent')), NETCONF);
    expect(r.code).toBe(FAKE_EXIT);
    expect(r.stdout.toString()).toBe('{"fake":"standalone"}');
    expect(servedBy(shippedDir)).toBe('fallback:no-socket');
  });

  it('without SRIOV_UNDERLAY_CNI_SOCKET it connects to the documented default, outside /run/sriov-underlay', async () => {
    const env = baseEnv('');
    delete env.SRIOV_UNDERLAY_CNI_SOCKET;
    const trace = path.join(scratch, 'connect.trace');
    const r = await runShim(shipped(), env, NETCONF, ['strace', '-qq', '-e', 'trace=connect', '-o', trace]);
    expect(r.code).toBe(FAKE_EXIT);
    expect(fs.readFileSync(trace, 'utf8')).toMatch(/sun_path="\/run\/sriov-underlay-cni\/cni\.sock"/);
    expect(servedBy(shippedDir)).toMatch(/^fallback:(no-socket|refused)$/);
  });

  it('stale socket file, no listener', async () => {
    const p = sock('stale');
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p]);
    expect(fs.statSync(p).isSocket()).toBe(true);
    const r = await runShim(shipped(), baseEnv(p), NETCONF);
    expect(r.code).toBe(FAKE_EXIT);
    expect(servedBy(shippedDir)).toBe('fallback:refused');
  });

  it('a socket path too long for sun_path', async () => {
    const r = await runShim(shipped(), baseEnv(`/run/${'x'.repeat(200)}.sock`), NETCONF);
    expect(r.code).toBe(FAKE_EXIT);
    expect(servedBy(shippedDir)).toBe('fallback:connect');
  });

  it('a listener that never greets: fallback after the greeting bound, nothing sent', async () => {
    let received = 0;
    const s = await serve('mute', (c) => c.on('data', (b: Buffer) => (received += b.length)));
    const r = await runShim(fast(), baseEnv(s.path), NETCONF);
    expectNoCrash(r);
    expect(r.code).toBe(FAKE_EXIT);
    expect(servedBy(fastDir)).toBe('fallback:no-greeting');
    expect(r.ms).toBeGreaterThanOrEqual(GREETING_MS);
    expect(s.connections).toBe(1);
    expect(received).toBe(0);
  });

  it('a server of protocol version 2 gets nothing: fallback (version)', async () => {
    let received = 0;
    const s = await serve('v2', (c) => {
      c.write('SRIOV-UNDERLAY-CNI/2\n');
      c.on('data', (b: Buffer) => (received += b.length));
    });
    const r = await runShim(fast(), baseEnv(s.path), NETCONF);
    expect(r.code).toBe(FAKE_EXIT);
    expect(servedBy(fastDir)).toBe('fallback:version');
    expect(received).toBe(0);
  });

  it('a greeting of other bytes: fallback (bad-greeting)', async () => {
    const s = await serve('http', (c) => c.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    const r = await runShim(fast(), baseEnv(s.path), NETCONF);
    expect(r.code).toBe(FAKE_EXIT);
    expect(servedBy(fastDir)).toBe('fallback:bad-greeting');
  });

  it('a server that closes before greeting: fallback (no-greeting)', async () => {
    const s = await serve('shut', (c) => c.end());
    const r = await runShim(fast(), baseEnv(s.path), NETCONF);
    expect(r.code).toBe(FAKE_EXIT);
    expect(servedBy(fastDir)).toBe('fallback:no-greeting');
  });

  it('a server that greets then closes at once: DEL falls back', async () => {
    const s = await serve('greet-close', (c) => c.end(GREETING));
    const r = await runShim(fast(), baseEnv(s.path, 'DEL'), NETCONF);
    expectNoCrash(r);
    expect(r.code).toBe(FAKE_EXIT);
    // Which of the two it sees depends on when the close lands; either way nothing ran.
    expect(servedBy(fastDir)).toMatch(/^fallback:(send|broken-reply)$/);
  });
});

describe('a broken reply: ADD answers code 11, every other command falls back', () => {
  const faults: Array<[string, (c: import('node:net').Socket, s: TestServer) => void]> = [
    ['greets, reads the request, then closes', (c) => void readRequest(c).then(() => c.end())],
    ['a reply cut in half', (c) => void readRequest(c).then(() => c.end(replyBytes(0, Buffer.alloc(1000, 0x41)).subarray(0, 530)))],
    ['a reply header cut before its newline', (c) => void readRequest(c).then(() => c.end('SRIOV-UNDERLAY-CNI/1 0 1'))],
    ['a reply with a garbage header', (c) => void readRequest(c).then(() => c.end('SRIOV-UNDERLAY-CNI/1 0 -5\n{}'))],
    ['a reply header of another version', (c) => void readRequest(c).then(() => c.end('SRIOV-UNDERLAY-CNI/2 0 2\n{}'))],
    ['an exit code over 255', (c) => void readRequest(c).then(() => c.end('SRIOV-UNDERLAY-CNI/1 256 2\n{}'))],
    ['a header with leading zeros', (c) => void readRequest(c).then(() => c.end('SRIOV-UNDERLAY-CNI/1 00 2\n{}'))],
    ['64 bytes and no newline', (c) => void readRequest(c).then(() => c.end('9'.repeat(100)))],
    ['a huge reply over the 1 MiB bound', (c) => void readRequest(c).then(() => c.end(replyBytes(0, Buffer.alloc((1 << 20) + 1, 0x7b))))],
    ['a server that never replies', () => undefined],
  ];
  for (const [name, fault] of faults) {
    it(name, async () => {
      const s = await serve('broken', (c, srv) => {
        c.write(GREETING);
        fault(c, srv);
      });
      const add = await runShim(fast(), baseEnv(s.path, 'ADD'), NETCONF);
      const e = cniError(add);
      expect(e).toMatchObject({ cniVersion: '1.0.0', code: 11 });
      expect(e.msg).toMatch(/ADD; try again/);
      expect(seen(fastDir), 'ADD must not fall back after the request was sent').toBeNull();

      for (const command of ['DEL', 'CHECK', 'GC', 'STATUS', 'VERSION']) {
        const r = await runShim(fast(), baseEnv(s.path, command), NETCONF);
        expectNoCrash(r);
        expect(r.code, command).toBe(FAKE_EXIT);
        expect(r.stdout.toString(), command).toBe('{"fake":"standalone"}');
        expect(servedBy(fastDir), command).toBe('fallback:broken-reply');
      }
    });
  }
});

describe('garbage in: a CNI error or a correct forward, never a crash', () => {
  it('2 MiB of binary stdin: code 6 naming the bound, nothing sent', async () => {
    const s = await serve('big', answering(0, Buffer.from('{}')));
    const stdin = Buffer.alloc(2 << 20);
    for (let i = 0; i < stdin.length; i++) stdin[i] = (i * 31) & 0xff;
    const e = cniError(await runShim(fast(), baseEnv(s.path), stdin));
    expect(e).toMatchObject({ cniVersion: '1.1.0', code: 6 });
    expect(e.details).toMatch(/1048576 bytes/);
    expect(s.connections).toBe(0);
  });

  it('binary stdin under the bound and empty stdin are forwarded as they are', async () => {
    const s = await serve('bin', answering(0, Buffer.from('ok')));
    const stdin = Buffer.from([0, 255, 0x22, 0x5c, 10, 13, 0xc3, 0x28]);
    for (const input of [stdin, Buffer.alloc(0)]) {
      const r = await runShim(fast(), baseEnv(s.path), input);
      expectNoCrash(r);
      expect(r.code).toBe(0);
      expect(s.requests.at(-1)!.stdin.equals(input)).toBe(true);
    }
  });

  it('a cniVersion in the netconf names the error version; a hostile one does not', async () => {
    const e1 = cniError(await runShim(fast(), baseEnv(sock('none'), 'ADD', { CNI_ARGS: 'x'.repeat(70_000) }), '{ "cniVersion" : "0.4.0" }'));
    expect(e1.cniVersion).toBe('0.4.0');
    const e2 = cniError(await runShim(fast(), baseEnv(sock('none'), 'ADD', { CNI_ARGS: 'x'.repeat(70_000) }), '{"cniVersion":"1.0\\",\\"code\\":0"}'));
    expect(e2.cniVersion).toBe('1.1.0');
  });

  it('a huge CNI_ARGS (70 KB): code 4 naming the bound; 60 KB is forwarded', async () => {
    const s = await serve('args', answering(0, Buffer.from('ok')));
    const e = cniError(await runShim(fast(), baseEnv(s.path, 'ADD', { CNI_ARGS: 'K=' + 'v'.repeat(70_000) }), NETCONF));
    expect(e.code).toBe(4);
    expect(e.details).toMatch(/65536 bytes and 256 entries/);
    expect(s.connections).toBe(0);
    const args = 'K=' + 'v'.repeat(60_000);
    const r = await runShim(fast(), baseEnv(s.path, 'ADD', { CNI_ARGS: args }), NETCONF);
    expect(r.code).toBe(0);
    expect(s.requests[0]!.env.map(String)).toContain(`CNI_ARGS=${args}`);
  });

  it('10,000 variables: the CNI_* ones are forwarded; 300 CNI_* ones are over the bound (code 4)', async () => {
    const s = await serve('many', answering(0, Buffer.from('ok')));
    const many: Record<string, string> = {};
    for (let i = 0; i < 10_000; i++) many[`V${i}`] = String(i);
    const r = await runShim(fast(), baseEnv(s.path, 'ADD', many), NETCONF);
    expectNoCrash(r);
    expect(r.code).toBe(0);
    expect(s.requests[0]!.env).toHaveLength(6);
    const cni: Record<string, string> = {};
    for (let i = 0; i < 300; i++) cni[`CNI_X${i}`] = String(i);
    expect(cniError(await runShim(fast(), baseEnv(s.path, 'ADD', cni), NETCONF)).code).toBe(4);
  });

  it('10,000 variables reach the standalone CNI too, all of them', async () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 10_000; i++) many[`V${i}`] = String(i);
    const r = await runShim(shipped(), baseEnv(sock('none'), 'DEL', many), NETCONF);
    expect(r.code).toBe(FAKE_EXIT);
    expect(seen(shippedDir)!.env).toHaveLength(10_000 + 7 + 1);
  });

  it('non-UTF-8 bytes in the environment are forwarded as bytes', async () => {
    const s = await serve('latin', answering(0, Buffer.from('ok')));
    const r = await runShim(fast(), baseEnv(s.path), NETCONF, ['sh', '-c', 'CNI_ARGS=$(printf "K=\\377\\376\\001") exec "$0"']);
    expectNoCrash(r);
    expect(r.code).toBe(0);
    const args = s.requests[0]!.env.find((b) => b.subarray(0, 9).toString() === 'CNI_ARGS=');
    expect(args).toEqual(Buffer.from([...Buffer.from('CNI_ARGS=K='), 0xff, 0xfe, 1]));
  });

  it('no CNI_COMMAND: forwarded for the server to answer, or the standalone CNI when there is none', async () => {
    const s = await serve('nocmd', answering(1, Buffer.from('{"code":4}')));
    const env = baseEnv(s.path);
    delete env.CNI_COMMAND;
    const r = await runShim(fast(), env, NETCONF);
    expectNoCrash(r);
    expect(r.code).toBe(1);
    expect(s.requests[0]!.env.map(String).some((e) => e.startsWith('CNI_COMMAND='))).toBe(false);
    const down = await runShim(fast(), { ...env, SRIOV_UNDERLAY_CNI_SOCKET: sock('none') }, NETCONF);
    expect(down.code).toBe(FAKE_EXIT);
  });

  it('closed stdin and stderr: the socket never takes a standard fd', async () => {
    const s = await serve('closed', answering(5, Buffer.from('relayed')));
    // sh closes 0 and 2 for the shim; stdout stays so the test can read it.
    const r = await runShim(fast(), baseEnv(s.path), '', ['sh', '-c', 'exec "$0" <&- 2>&-']);
    expectNoCrash(r);
    expect(r.code).toBe(5);
    expect(r.stdout.toString()).toBe('relayed');
  });
});

describe('fallback: the standalone CNI gets what the shim got', () => {
  it('the same environment plus SERVED_BY, argv[0] its own path, and the same stdin bytes', async () => {
    const stdin = Buffer.alloc(300_000);
    for (let i = 0; i < stdin.length; i++) stdin[i] = (i * 13) & 0xff;
    const env = baseEnv(sock('none'), 'DEL', { HOME: '/root', ODD: 'a=b=c', EMPTY: '', SRIOV_UNDERLAY_SERVED_BY: 'server' });
    const r = await runShim(shipped(), env, stdin);
    expect(r.code).toBe(FAKE_EXIT);
    const got = seen(shippedDir)!;
    const expected = Object.entries(env)
      .filter(([k]) => k !== 'SRIOV_UNDERLAY_SERVED_BY')
      .map(([k, v]) => `${k}=${v}`);
    expect(got.env).toEqual([...expected, 'SRIOV_UNDERLAY_SERVED_BY=fallback:no-socket']);
    expect(got.argv).toEqual([path.join(shippedDir, 'sriov-underlay-cni')]);
    expect(got.stdin.equals(stdin)).toBe(true);
  });

  it('through a symlink, the standalone CNI is found beside the shim itself', async () => {
    const link = path.join(scratch, 'linked-sriov-underlay');
    fs.symlinkSync(shipped(), link);
    const r = await runShim(link, baseEnv(sock('none'), 'DEL'), NETCONF);
    expect(r.code).toBe(FAKE_EXIT);
    expect(seen(shippedDir)!.stdin.toString()).toBe(NETCONF);
  });

  it('no standalone CNI either: a CNI error naming the execve and the server path, exit 1', async () => {
    const lone = path.join(scratch, 'lone');
    fs.mkdirSync(lone);
    fs.copyFileSync(shipped(), path.join(lone, 'sriov-underlay'));
    fs.chmodSync(path.join(lone, 'sriov-underlay'), 0o755);
    const e = cniError(await runShim(path.join(lone, 'sriov-underlay'), baseEnv(sock('none'), 'ADD'), NETCONF));
    expect(e).toMatchObject({ cniVersion: '1.0.0', code: 11 });
    expect(e.details).toBe(`execve ${path.join(lone, 'sriov-underlay-cni')}: No such file or directory (the CNI server could not take the call: no-socket)`);
  });

  it('the real standalone CNI answers VERSION through the fallback', async () => {
    expect(fs.existsSync(STANDALONE), `${STANDALONE} missing: run npm run build`).toBe(true);
    const r = await runShim(SHIPPED, { PATH: '/usr/bin:/bin', CNI_COMMAND: 'VERSION', SRIOV_UNDERLAY_CNI_SOCKET: sock('none') }, '{"cniVersion":"0.4.0"}');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toEqual({ cniVersion: '0.4.0', supportedVersions: expect.arrayContaining(['0.4.0', '1.1.0']) });
  });
});
