/**
 * The devices one pool advertises, and the reconcile step that recomputes every pool from the
 * latest discovery, config, PF carrier and allocations. ListAndWatch streams subscribe to a
 * PoolState and get the full list again whenever it changes.
 */
import { EventEmitter } from 'node:events';
import type { Pool } from '../../src/schemas/device-pools';
import { HEALTHY, UNHEALTHY, type DeviceMsg } from '../../src/proto';
import type { VfRecord } from './discovery';
import { fullResourceName, poolMatches } from './selectors';

export interface PoolDevice {
  vf: VfRecord;
  healthy: boolean;
  /** Why it is Unhealthy (null when healthy). */
  reason: string | null;
  /** Left the pool (config, driver or sriov_numvfs change) while allocated: kept until freed. */
  draining: boolean;
}

export class PoolState extends EventEmitter {
  readonly resource: string;
  private devs = new Map<string, PoolDevice>();
  private lastKey = '';

  constructor(public pool: Pool) {
    super();
    this.resource = fullResourceName(pool);
  }

  get devices(): ReadonlyMap<string, PoolDevice> {
    return this.devs;
  }

  /** The ListAndWatch payload: every device, sorted by PCI address. */
  deviceList(): DeviceMsg[] {
    return [...this.devs.values()]
      .sort((a, b) => (a.vf.pciAddr < b.vf.pciAddr ? -1 : 1))
      .map((d) => ({
        ID: d.vf.pciAddr,
        health: d.healthy ? HEALTHY : UNHEALTHY,
        topology: d.vf.topologyNode === null ? null : { nodes: [{ ID: d.vf.topologyNode }] },
      }));
  }

  /** Replace the device set; emits 'update' only when what kubelet sees changed. */
  setDevices(next: Map<string, PoolDevice>): boolean {
    this.devs = next;
    const key = JSON.stringify(this.deviceList());
    if (key === this.lastKey) return false;
    this.lastKey = key;
    this.emit('update');
    return true;
  }

  counts(): { total: number; healthy: number } {
    let healthy = 0;
    for (const d of this.devs.values()) if (d.healthy) healthy++;
    return { total: this.devs.size, healthy };
  }
}

export interface ReconcileInput {
  /** Accepted pools, in config order. */
  pools: readonly Pool[];
  vfs: readonly VfRecord[];
  /** Carrier of a host netdev; undefined when unknown (treated as up). */
  carrier: (ifname: string) => boolean | undefined;
  isAllocated: (resource: string, pciAddr: string) => boolean;
  /** PF netdevs whose VFs the node policy is about to destroy: advertised Unhealthy meanwhile. */
  fenced?: ReadonlySet<string>;
}

export interface PoolPlan {
  pool: Pool;
  devices: Map<string, PoolDevice>;
}

export interface ReconcileResult {
  /** Every pool to serve, keyed by full resource name (config pools plus pools still draining). */
  plan: Map<string, PoolPlan>;
  /** VFs matched by more than one pool: resource names in config order, first one wins. */
  overlaps: Array<{ pciAddr: string; resources: string[] }>;
  /** Devices kept only because they are allocated: what happened to them. */
  draining: Array<{ resource: string; pciAddr: string; reason: string }>;
}

function health(vf: VfRecord, carrier: ReconcileInput['carrier'], fenced?: ReadonlySet<string>): { healthy: boolean; reason: string | null } {
  if (vf.pfNetdev !== null && fenced?.has(vf.pfNetdev)) return { healthy: false, reason: `PF ${vf.pfNetdev}: the node policy is about to re-create its VFs` };
  if (vf.pfNetdev !== null && carrier(vf.pfNetdev) === false) return { healthy: false, reason: `PF ${vf.pfNetdev} has no carrier` };
  return { healthy: true, reason: null };
}

/** Recompute every pool. `current` is what each pool advertises now (resource -> state). */
export function reconcile(current: ReadonlyMap<string, { pool: Pool; devices: ReadonlyMap<string, PoolDevice> }>, input: ReconcileInput): ReconcileResult {
  const byPci = new Map(input.vfs.map((v) => [v.pciAddr, v]));
  const owner = new Map<string, string>(); // pci -> resource
  const overlaps: ReconcileResult['overlaps'] = [];
  for (const vf of input.vfs) {
    const matches = input.pools.filter((p) => poolMatches(p, vf)).map(fullResourceName);
    if (matches[0]) owner.set(vf.pciAddr, matches[0]);
    if (matches.length > 1) overlaps.push({ pciAddr: vf.pciAddr, resources: matches });
  }

  const plan = new Map<string, PoolPlan>();
  for (const pool of input.pools) plan.set(fullResourceName(pool), { pool, devices: new Map() });

  // Allocated devices that would leave their pool stay in it, Unhealthy, until kubelet frees them.
  const draining: ReconcileResult['draining'] = [];
  const held = new Set<string>();
  for (const [resource, state] of current) {
    for (const [pci, dev] of state.devices) {
      if (owner.get(pci) === resource) continue;
      if (!input.isAllocated(resource, pci)) continue;
      const vf = byPci.get(pci);
      const reason = !vf
        ? 'device disappeared (sriov_numvfs changed?) while allocated'
        : !plan.has(resource)
          ? 'pool removed from the config while the device is allocated'
          : owner.has(pci)
            ? `now matches pool ${owner.get(pci)}; moves when freed`
            : 'no longer matches any pool; leaves when freed';
      let entry = plan.get(resource);
      if (!entry) {
        entry = { pool: state.pool, devices: new Map() };
        plan.set(resource, entry);
      }
      entry.devices.set(pci, { vf: vf ?? dev.vf, healthy: false, reason, draining: true });
      held.add(pci);
      draining.push({ resource, pciAddr: pci, reason });
    }
  }

  for (const vf of input.vfs) {
    const resource = owner.get(vf.pciAddr);
    if (!resource || held.has(vf.pciAddr)) continue;
    const h = health(vf, input.carrier, input.fenced);
    plan.get(resource)?.devices.set(vf.pciAddr, { vf, healthy: h.healthy, reason: h.reason, draining: false });
  }
  return { plan, overlaps, draining };
}
