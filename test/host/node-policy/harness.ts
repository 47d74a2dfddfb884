/**
 * A node for the node policy's host tests: a generated sysfs tree with a kernel behind it
 * (FakeKernel: sriov_numvfs and driver binding act like the kernel's), the PF's netdev a real veth
 * in a scratch netns (its MTU and link state are real), kubelet's checkpoint and the CNI's state dir
 * in a temp dir, and the policy as a ConfigMap-like directory.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { NodePolicy, type NodePolicyOptions } from '../../../node/policy/component';
import { silentLogger } from '../../../src/log';
import { Rtnl } from '../../../src/netlink';
import { FakeKernel } from '../../fixtures/sysfs-kernel';
import { setNumVfs, writeSysfsTree, type PfSpec } from '../../fixtures/sysfs-tree';
import { ConfigDir } from '../device-plugin/harness';
import { ip, Scratch, suffix } from '../helpers/nl';

export const PF_PCI = '0000:91:00.0';
export const PF2_PCI = '0000:92:00.0';
export const vfPci = (bus: number, j: number) => `0000:${bus.toString(16)}:10.${j}`;

export class PolicyNode {
  readonly base = fs.mkdtempSync(path.join(os.tmpdir(), 'np-'));
  readonly root = path.join(this.base, 'sys');
  readonly stateDir = path.join(this.base, 'cni-state');
  readonly checkpoint = path.join(this.base, 'kubelet_internal_checkpoint');
  readonly config: ConfigDir;
  readonly scratch = new Scratch();
  readonly ns: { name: string; path: string };
  readonly pfName: string;
  readonly pf2Name: string;
  readonly pfs: PfSpec[];
  readonly kernel: FakeKernel;
  readonly rtnl: Rtnl;
  private policies: NodePolicy[] = [];

  constructor() {
    const s = suffix();
    this.pfName = `npa${s}`;
    this.pf2Name = `npb${s}`;
    this.ns = this.scratch.addNetns('np');
    this.scratch.addVeth(this.pfName, `npx${s}`, this.ns.name, this.ns.name);
    this.scratch.addVeth(this.pf2Name, `npy${s}`, this.ns.name, this.ns.name);
    const spec = (pci: string, bus: number, name: string): PfSpec => ({
      pciAddr: pci,
      netdev: name,
      totalVfs: 8,
      vfs: Array.from({ length: 8 }, (_, j) => ({ pciAddr: vfPci(bus, j), netdev: `${name.slice(0, 3)}${s}v${j}` })),
    });
    this.pfs = [spec(PF_PCI, 0x91, this.pfName), spec(PF2_PCI, 0x92, this.pf2Name)];
    writeSysfsTree(this.root, this.pfs);
    for (const pf of this.pfs) setNumVfs(this.root, pf, 0); // a fresh boot: no VFs
    this.kernel = new FakeKernel(this.root, this.pfs);
    this.config = new ConfigDir(path.join(this.base, 'policy'));
    this.rtnl = Rtnl.openIn(this.ns.path);
  }

  get policyFile(): string {
    return path.join(this.config.dir, 'pools.yaml');
  }

  setPolicy(content: unknown): void {
    this.config.write(typeof content === 'string' ? content : YAML.stringify(content));
  }

  /** A fresh daemon (nothing carried over from an earlier one, as after a restart). */
  daemon(labels: Record<string, string> | null = {}, extra: Partial<NodePolicyOptions> = {}): NodePolicy {
    const p = new NodePolicy({
      sysfsRoot: this.root,
      source: { configMap: 'sriov-underlay/node-policy', file: this.policyFile },
      links: this.rtnl,
      inUse: { checkpointPath: this.checkpoint, stateDir: this.stateDir, podResources: null },
      nodeLabels: async () => labels,
      log: silentLogger(),
      writer: { write: this.kernel.write },
      ...extra,
    });
    this.policies.push(p);
    return p;
  }

  numVfs(pci = PF_PCI): number {
    return Number(fs.readFileSync(path.join(this.root, 'bus/pci/devices', pci, 'sriov_numvfs'), 'utf8'));
  }

  virtfns(pci = PF_PCI): string[] {
    return fs.readdirSync(path.join(this.root, 'bus/pci/devices', pci)).filter((e) => e.startsWith('virtfn')).sort();
  }

  driver(vf: string): string | null {
    try {
      return path.basename(fs.readlinkSync(path.join(this.root, 'bus/pci/devices', vf, 'driver')));
    } catch {
      return null;
    }
  }

  link(name = this.pfName): { mtu: number; up: boolean } {
    const [l] = JSON.parse(ip('-j', '-n', this.ns.name, 'link', 'show', 'dev', name)) as Array<{ mtu: number; flags: string[] }>;
    return { mtu: l!.mtu, up: l!.flags.includes('UP') };
  }

  /** kubelet's checkpoint listing these VFs as assigned to a pod (or none). */
  allocate(pcis: string[], resource = 'sriov-underlay.io/net', podUid = 'uid-1234'): void {
    this.allocateTo(pcis.length ? [{ podUid, pcis }] : [], resource);
  }

  /** kubelet's checkpoint with these pods holding these VFs. */
  allocateTo(pods: Array<{ podUid: string; pcis: string[] }>, resource = 'sriov-underlay.io/net'): void {
    const entries = pods.map((p) => ({ PodUID: p.podUid, ContainerName: 'c', ResourceName: resource, DeviceIDs: { '0': p.pcis } }));
    fs.writeFileSync(this.checkpoint, JSON.stringify({ Data: { PodDeviceEntries: entries, RegisteredDevices: {} }, Checksum: 1 }));
  }

  /** Everything under the tree (files with content, links with target) plus both PFs' links. */
  snapshot(): string {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d).sort()) {
        const p = path.join(d, e);
        const st = fs.lstatSync(p);
        const rel = path.relative(this.root, p);
        if (st.isSymbolicLink()) out.push(`${rel} -> ${fs.readlinkSync(p)}`);
        else if (st.isDirectory()) {
          out.push(`${rel}/`);
          walk(p);
        } else out.push(`${rel} = ${fs.readFileSync(p, 'utf8').trim()}`);
      }
    };
    walk(this.root);
    out.push(JSON.stringify(this.link()), JSON.stringify(this.link(this.pf2Name)));
    return out.join('\n');
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.policies.map((p) => p.stop()));
    this.rtnl.close();
    this.scratch.cleanup();
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}
