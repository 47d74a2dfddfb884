/**
 * The Dockerfile builds the same image as `npm run image`: its last stage is `FROM scratch` plus the
 * tree `scripts/image.mjs --rootfs` writes from the one list (scripts/image-contents.mjs), and its
 * ENTRYPOINT, USER, ENV, WORKDIR and labels are the list's. The build stage installs the Debian
 * packages the list takes programs from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(__dirname, '../..');

interface Contents {
  HOST_PROGRAMS: Array<{ package: string }>;
  CA_BUNDLE: { package: string };
  RUNTIME: { user: string; env: string[]; entrypoint: string[]; workingDir: string };
}
interface ImageScript {
  imageRef(version: string): string;
  labels(p: { version: string; revision: string; created: string; license: string; source?: string }): Record<string, string>;
}

interface Instruction {
  op: string;
  args: string;
}
/** Dockerfile instructions, continuation lines joined, comments dropped, split into stages. */
function parseDockerfile(text: string): Instruction[][] {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  const joined = lines.join('\n').replace(/\\\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`cannot read Dockerfile line: ${line}`);
    const ins = { op: (m[1] as string).toUpperCase(), args: (m[2] as string).replace(/\s+/g, ' ').trim() };
    if (ins.op === 'FROM') stages.push([]);
    stages[stages.length - 1]?.push(ins);
  }
  return stages;
}

/** LABEL k="v" k2="v2" ... with ${ARG} replaced by the stage's ARG defaults (or the given values). */
function labelsOf(stage: Instruction[], args: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ins of stage.filter((i) => i.op === 'LABEL')) {
    for (const m of ins.args.matchAll(/([\w.-]+)="([^"]*)"/g)) {
      out[m[1] as string] = (m[2] as string).replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? `<unset ${k}>`);
    }
  }
  return out;
}

let C: Contents;
let image: ImageScript;
let stages: Instruction[][];
let last: Instruction[];
let build: Instruction[];
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string; license: string };

beforeAll(async () => {
  // Plain ES modules (scripts run by node), imported by path so TypeScript does not resolve them.
  const contentsPath = path.join(REPO, 'scripts/image-contents.mjs');
  const imagePath = path.join(REPO, 'scripts/image.mjs');
  C = (await import(contentsPath)) as Contents;
  image = (await import(imagePath)) as ImageScript;
  stages = parseDockerfile(fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8'));
  last = stages[stages.length - 1] as Instruction[];
  build = stages.find((s) => /\bAS build$/i.test(s[0]?.args ?? '')) as Instruction[];
});

describe('Dockerfile', () => {
  it('ships only the tree scripts/image.mjs --rootfs writes from the list', () => {
    expect(last[0]).toEqual({ op: 'FROM', args: 'scratch' });
    const copies = last.filter((i) => i.op === 'COPY' || i.op === 'ADD');
    expect(copies).toEqual([{ op: 'COPY', args: '--from=build /rootfs/ /' }]);
    expect(last.filter((i) => i.op === 'RUN')).toEqual([]);
    expect(build, 'a stage named build').toBeDefined();
    expect(build.some((i) => i.op === 'RUN' && /(^|&& )node scripts\/image\.mjs --rootfs \/rootfs$/.test(i.args))).toBe(true);
  });

  it('installs, in the build stage, every Debian package the list takes files from', () => {
    const installed = new Set(
      build
        .filter((i) => i.op === 'RUN')
        .flatMap((i) => [...i.args.matchAll(/apt-get install ([^&]*)/g)].flatMap((m) => (m[1] as string).split(' ')))
        .filter((w) => w && !w.startsWith('-')),
    );
    for (const p of [...C.HOST_PROGRAMS.map((h) => h.package), C.CA_BUNDLE.package]) expect(installed, p).toContain(p);
  });

  it('runs what the OCI image runs: ENTRYPOINT, USER, ENV, WORKDIR', () => {
    const one = (op: string) => last.filter((i) => i.op === op).map((i) => i.args);
    expect(one('ENTRYPOINT').map((a) => JSON.parse(a) as unknown)).toEqual([C.RUNTIME.entrypoint]);
    expect(one('USER')).toEqual([C.RUNTIME.user]);
    expect(one('ENV')).toEqual(C.RUNTIME.env);
    expect(one('WORKDIR')).toEqual([C.RUNTIME.workingDir]);
    expect(one('CMD')).toEqual([]);
  });

  it('has the labels the OCI image has, with the version of package.json by default', () => {
    const argDefaults = Object.fromEntries(
      last.filter((i) => i.op === 'ARG').map((i) => i.args.split('=') as [string, string]),
    );
    expect(argDefaults.VERSION).toBe(pkg.version);
    const values = { version: 'V', revision: 'R', created: 'C', license: pkg.license };
    // source is known only where the repository says where it lives (package.json or git's origin).
    expect(labelsOf(last, { VERSION: 'V', REVISION: 'R', CREATED: 'C' })).toEqual(image.labels(values));
  });
});

describe('deploy/40-daemonset.yaml', () => {
  it('runs the image under the name the OCI archive gives it, in every container', () => {
    const ds = fs.readFileSync(path.join(REPO, 'deploy/40-daemonset.yaml'), 'utf8');
    const images = [...ds.matchAll(/^\s*image:\s*(\S+)\s*$/gm)].map((m) => m[1]);
    expect(images.length).toBeGreaterThanOrEqual(2);
    for (const i of images) expect(i).toBe(image.imageRef(pkg.version));
  });
});
