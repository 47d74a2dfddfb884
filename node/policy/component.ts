/**
 * The node-policy component of the node daemon: loads the policy, plans it for this node and applies
 * it PF by PF (engine.ts). `applyOnce()` runs before the device plugin first registers (main.ts), so
 * kubelet never sees a partial VF list; then the policy file is watched and the whole thing re-run
 * on every change and every `intervalMs` (a held change goes through once its VFs are free). Runs
 * are serialized. The status goes to the node's SriovNodeState (through `statusSink`) and changes of
 * condition are logged and sent as Events on the Node.
 */
import * as path from 'node:path';
import { DirWatch } from '../device-plugin/dir-watch';
import type { Logger } from '../../src/log';
import { listPfs } from '../../src/sysfs/pci';
import { applyPf, type Links, type PfApplyResult } from './engine';
import type { EvictNeed, Evictor } from './evict';
import { readInUse, type InUseSources } from './in-use';
import { fileWriter, type SysfsWriter } from './kernel';
import { loadPolicy, PolicyFileError, sourceLabel, type PolicySource } from './load';
import { buildPlan } from './plan';
import type { PolicyEntry } from './schema';
import type { NodePolicyStatus } from './status';

export interface NodePolicyOptions {
  sysfsRoot: string;
  source: PolicySource;
  links: Links;
  inUse: InUseSources;
  /** This node's labels; null when they cannot be had (entries with a nodeSelector are then held). */
  nodeLabels: () => Promise<Record<string, string> | null>;
  log: Logger;
  writer?: SysfsWriter;
  intervalMs?: number;
  /** `disruption: evict` (evict.ts); null when the API or the node name is not available. */
  evictor?: Evictor | null;
}

export type PolicyEvent = { type: 'Normal' | 'Warning'; reason: string; message: string };

export class NodePolicy {
  private entries: PolicyEntry[] = [];
  private fileError: string | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private queued = false;
  private watch: DirWatch | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastConditions = new Map<string, string>();
  private running = false;
  last: NodePolicyStatus | null = null;
  /** Writes done since start (for tests and the log). */
  writes = 0;
  statusSink: ((s: NodePolicyStatus) => void) | null = null;
  /** Set when the device plugin runs in this process: see EngineDeps.fence. */
  fence: ((pfNetdev: string, on: boolean) => Promise<void>) | null = null;
  /** Set when the device plugin runs in this process: Allocates it answered that kubelet has not checkpointed yet. */
  allocatedByPlugin: ((pciAddr: string) => boolean) | null = null;
  eventSink: ((e: PolicyEvent) => void) | null = null;

  constructor(private readonly opts: NodePolicyOptions) {}

  /** Load, plan and apply once; resolves with the status. Serialized with every other run. */
  applyOnce(): Promise<NodePolicyStatus> {
    const run = this.chain.then(() => this.run());
    this.chain = run.catch(() => undefined);
    return run;
  }

  start(): void {
    this.running = true;
    const trigger = () => this.request();
    this.watch = new DirWatch(path.dirname(this.opts.source.file), trigger, 60_000, 50);
    this.watch.start();
    this.timer = setInterval(trigger, this.opts.intervalMs ?? 2_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.watch?.stop();
    if (this.timer) clearInterval(this.timer);
    await this.chain;
    await this.opts.evictor?.stop();
  }

  private request(): void {
    if (this.queued || !this.running) return;
    this.queued = true;
    this.chain = this.chain.then(() => {
      this.queued = false;
      return this.running ? this.run() : undefined;
    }).catch((e: unknown) => this.opts.log.error({ err: (e as Error).message }, 'node policy run failed'));
  }

  private load(): void {
    try {
      const loaded = loadPolicy(this.opts.source);
      const key = JSON.stringify(loaded);
      if (key !== this.loadedKey) {
        this.loadedKey = key;
        for (const err of loaded.errors) this.opts.log.error({ err }, 'node policy entry rejected');
        this.opts.log.info({ entries: loaded.entries.map((e) => e.name), rejected: loaded.errors.length }, 'node policy loaded');
      }
      this.entries = loaded.entries;
      this.schemaErrors = loaded.errors;
      this.fileError = null;
    } catch (e) {
      if (!(e instanceof PolicyFileError)) throw e;
      if (this.fileError !== e.message) this.opts.log.error({ err: e.message, keeping: this.entries.map((x) => x.name) }, 'node policy unusable; keeping the previous one');
      this.fileError = e.message;
    }
  }
  private loadedKey = '';
  private schemaErrors: string[] = [];

  private async run(): Promise<NodePolicyStatus> {
    this.load();
    const { sysfsRoot: root } = this.opts;
    const needLabels = this.entries.some((e) => Object.keys(e.nodeSelector).length > 0);
    const labels = needLabels ? await this.opts.nodeLabels().catch(() => null) : {};
    const plan = buildPlan(this.entries, labels, listPfs(root));
    const results: Array<{ p: (typeof plan.pfs)[number]; r: PfApplyResult }> = [];
    for (const p of plan.pfs) {
      const r = await applyPf(p, {
        root,
        writer: this.opts.writer ?? fileWriter,
        links: this.opts.links,
        inUse: async (vfs) => {
          const u = await readInUse(this.opts.inUse, vfs);
          for (const v of vfs) if (!u.holders.has(v.pciAddr) && this.allocatedByPlugin?.(v.pciAddr)) u.holders.set(v.pciAddr, 'a pod the device plugin just allocated it to');
          return u;
        },
        ...(this.fence ? { fence: this.fence } : {}),
      });
      if (r.actions.length) {
        this.writes += r.actions.length;
        this.opts.log.info({ pf: p.name, entries: p.entries, actions: r.actions }, 'node policy applied');
      }
      results.push({ p, r });
    }
    await this.disrupt(results);
    const pfs = [];
    for (const { p, r } of results) {
      this.report(p.name, r.status.conditions);
      pfs.push(r.status);
    }
    const rejected = [
      ...(this.fileError ? [this.fileError] : []),
      ...this.schemaErrors,
      ...plan.rejected.map((r) => `${sourceLabel(this.opts.source)}: entry "${r.entry}": field "${r.field}": ${r.message}`),
    ];
    for (const line of plan.rejected) this.reportOnce(`rejected:${line.entry}:${line.message}`, { type: 'Warning', reason: 'NodePolicyRejected', message: `entry "${line.entry}": field "${line.field}": ${line.message}` });
    const status: NodePolicyStatus = { source: sourceLabel(this.opts.source), appliedAt: new Date().toISOString(), rejected, pfs };
    this.last = status;
    this.statusSink?.(status);
    return status;
  }

  /**
   * `disruption: evict`: the PFs whose sriov_numvfs change is held by pods, and whose entry opts in,
   * go to the evictor (every pass, also with none: that is how it releases the Lease); what it did
   * is added to the PF's Blocked condition (reason WaitingForLease, Evicting, BlockedByPDB, ...).
   */
  private async disrupt(results: Array<{ p: { name: string; evict: boolean }; r: PfApplyResult }>): Promise<void> {
    const needs: EvictNeed[] = results.flatMap(({ p, r }) => (p.evict && r.numVfsHeld ? [{ pf: p.name, held: r.numVfsHeld }] : []));
    const evictor = this.opts.evictor;
    if (!evictor) {
      for (const { p, r } of results) {
        if (!p.evict || !r.numVfsHeld) continue;
        const b = r.status.conditions.find((c) => c.type === 'Blocked');
        if (b) b.message += '; disruption: evict needs API access and the node name (--node-name): nothing evicted';
      }
      return;
    }
    const { outcomes, events } = await evictor.step(needs);
    for (const e of events) this.eventSink?.(e);
    for (const { p, r } of results) {
      const o = outcomes.get(p.name);
      const b = r.status.conditions.find((c) => c.type === 'Blocked');
      if (!o || !b) continue;
      b.reason = o.reason;
      b.message += `; ${o.message}`;
    }
  }

  private reported = new Set<string>();
  private reportOnce(key: string, ev: PolicyEvent): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.opts.log.warn({ reason: ev.reason }, ev.message);
    this.eventSink?.(ev);
  }

  /** Log and send an Event when a PF's conditions change (not on every pass). */
  private report(pf: string, conditions: NodePolicyStatus['pfs'][number]['conditions']): void {
    const applied = conditions.find((c) => c.type === 'Applied');
    const key = conditions.map((c) => `${c.type}=${c.status}:${c.type === 'Applied' && c.status === 'True' ? '' : c.message}`).join('|');
    if (this.lastConditions.get(pf) === key) return;
    this.lastConditions.set(pf, key);
    for (const c of conditions) {
      if (c.type === 'Applied' && c.status === 'True') {
        if (c.reason === 'Applied') this.eventSink?.({ type: 'Normal', reason: 'NodePolicyApplied', message: `PF ${pf}: ${c.message}` });
        continue;
      }
      if (c.type === 'Applied') continue;
      const ev: PolicyEvent = { type: 'Warning', reason: c.type === 'Blocked' ? 'NodePolicyBlocked' : 'NodePolicyFailed', message: `PF ${pf}: ${c.message}` };
      this.opts.log.warn({ pf, reason: ev.reason, pods: c.pods }, ev.message);
      this.eventSink?.(ev);
    }
    if (applied?.status === 'False' && !conditions.some((c) => c.type !== 'Applied')) {
      this.opts.log.warn({ pf, reason: applied.reason }, applied.message);
    }
  }
}
