/**
 * Test harness: a generated sysfs tree, a pools config file in a ConfigMap-like directory (..data
 * symlink swap), a fake kubelet and the real daemon, all under one short temp dir.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { DevicePluginDaemon, type DevicePluginDaemonOptions } from '../../../node/device-plugin/daemon';
import type { RegistrationMode } from '../../../node/device-plugin/registration';
import { silentLogger } from '../../../src/log';
import { writeSysfsTree, type PfSpec } from '../../fixtures/sysfs-tree';
import { FakeKubelet } from '../../fakes/kubelet';

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** PFs 0000:<bus+i>:00.0 named <tag>p<i>, each with `vfs` VFs 0000:<bus+i>:10.<j>. */
export function pfSpecs(count: number, vfs: number, opts: { tag?: string; bus?: number; numa?: number[] } = {}): PfSpec[] {
  const tag = opts.tag ?? 'dp';
  return Array.from({ length: count }, (_, i) => {
    const b = hex2((opts.bus ?? 0x81) + i);
    const numa = opts.numa?.[i];
    return {
      pciAddr: `0000:${b}:00.0`,
      netdev: `${tag}p${i}`,
      ...(numa === undefined ? {} : { numaNode: numa }),
      vfs: Array.from({ length: vfs }, (_, j) => ({ pciAddr: `0000:${b}:${hex2(0x10 + Math.floor(j / 8))}.${j % 8}`, netdev: `${tag}p${i}v${j}` })),
    };
  });
}

export class ConfigDir {
  private gen = 0;
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }
  get file(): string {
    return path.join(this.dir, 'pools.yaml');
  }
  /** Publish new content the way kubelet updates a ConfigMap volume: new dir, swap ..data. */
  write(content: unknown): void {
    const text = typeof content === 'string' ? content : YAML.stringify(content);
    const gen = `..gen${++this.gen}`;
    fs.mkdirSync(path.join(this.dir, gen));
    fs.writeFileSync(path.join(this.dir, gen, 'pools.yaml'), text);
    const tmp = path.join(this.dir, '..data_tmp');
    fs.symlinkSync(gen, tmp);
    fs.renameSync(tmp, path.join(this.dir, '..data'));
    if (!fs.existsSync(this.file)) fs.symlinkSync('..data/pools.yaml', this.file);
    if (this.gen > 1) fs.rmSync(path.join(this.dir, `..gen${this.gen - 1}`), { recursive: true, force: true });
  }
}

export interface Harness {
  base: string;
  sysfs: string;
  devinfo: string;
  config: ConfigDir;
  kubelet: FakeKubelet;
  daemon: DevicePluginDaemon;
  startDaemon(extra?: Partial<DevicePluginDaemonOptions>): Promise<DevicePluginDaemon>;
  cleanup(): Promise<void>;
}

/** pfs: specs to write a plain tree from, or a function that builds the tree (e.g. an emulated NIC). */
export async function harness(opts: { mode: RegistrationMode; pfs: PfSpec[] | ((sysfs: string) => void); config: unknown; startKubelet?: boolean }): Promise<Harness> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'dp-'));
  const sysfs = path.join(base, 'sys');
  const devinfo = path.join(base, 'devinfo');
  if (typeof opts.pfs === 'function') opts.pfs(sysfs);
  else writeSysfsTree(sysfs, opts.pfs);
  const config = new ConfigDir(path.join(base, 'cfg'));
  config.write(opts.config);
  const kubelet = new FakeKubelet(path.join(base, 'k'), opts.mode);
  if (opts.startKubelet !== false) await kubelet.start();
  let daemon: DevicePluginDaemon | null = null;
  const h: Harness = {
    base,
    sysfs,
    devinfo,
    config,
    kubelet,
    get daemon(): DevicePluginDaemon {
      if (!daemon) throw new Error('daemon not started');
      return daemon;
    },
    async startDaemon(extra = {}) {
      daemon = new DevicePluginDaemon({
        kubeletDir: kubelet.dir,
        sysfsRoot: sysfs,
        configPath: config.file,
        devinfoDir: devinfo,
        registrationMode: opts.mode,
        log: silentLogger(),
        rescanMs: 100,
        backoffMs: 50,
        maxBackoffMs: 400,
        ...extra,
      });
      await daemon.start();
      return daemon;
    },
    async cleanup() {
      await daemon?.stop();
      await kubelet.stop();
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
  return h;
}
