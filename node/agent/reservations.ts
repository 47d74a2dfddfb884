/**
 * Pre-allocation (`pool:` + `reserve: true`): every agent makes the reservations its registration
 * index asks for and that no claim covers yet (the atomic create makes racing agents end with one),
 * and releases reservations whose registration is gone.
 *
 * A reservation is released only when a **fresh read** of the ConfigMap its claim names shows the
 * registration gone (ConfigMap deleted or no longer a registration, key removed, or the index,
 * up to date with exactly that ConfigMap version, sees it without `reserve`), and the delete
 * carries the claim's uid and resourceVersion. An agent whose view is stale (a registration it has
 * not seen yet) or briefly invalid (a network edit that makes the entry fail for a while) therefore
 * keeps the reservation. Runs after each index change, never before the first full list.
 */
import type * as k8s from '@kubernetes/client-node';
import { CLAIM_LABELS, type IPClaim } from '../../src/ipam/claims';
import type { PoolRequest } from '../../src/ipam/pool-allocator';
import { releasedAtMs } from '../../src/ipam/pool-release';
import { isConflict, isNotFound, type ClusterObjects } from '../../src/kube/client';
import type { Logger } from '../../src/log';
import type { RegistrationIndex } from '../../src/registrations/index';
import type { NetworkModel } from '../../src/registrations/network-model';
import { REGISTRATION_LABEL } from '../../src/schemas/registration';
import { settingsRecord } from './assign';
import { CoalescedPass } from './coalesce';

export interface ReservationsDeps {
  index: RegistrationIndex;
  allocate: (net: NetworkModel, req: PoolRequest) => Promise<IPClaim[]>;
  /** The claims informer's cache (IpamService.claims); null until listed, then a list is made. */
  cached: () => Iterable<IPClaim> | null;
  claims: ClusterObjects<IPClaim>;
  core: k8s.CoreV1Api;
  log: Logger;
}

/** One reservation per registration key and network (a key may list several attachments). */
const regKey = (namespace: string, key: string, network: string) => `${namespace}/${key}/${network}`;

export class Reservations {
  private readonly passes = new CoalescedPass(() => this.syncOnce().catch((e: unknown) => this.d.log.warn({ err: (e as Error).message }, 'reservation sync failed')));
  /** Reservations released, for tests and metrics. */
  released = 0;

  constructor(private readonly d: ReservationsDeps) {}

  /** One pass now (coalesced with a pass in flight). Failures are logged; the next change retries. */
  sync(): Promise<void> {
    return this.passes.run();
  }

  /** Waits for a pass in flight (stop). */
  idle(): Promise<void> {
    return this.passes.idle();
  }

  private async syncOnce(): Promise<void> {
    const { index, log } = this.d;
    const all = [...(this.d.cached() ?? (await this.d.claims.list({ labelSelector: `${CLAIM_LABELS.kind}=reserved` })).items)];
    const covered = new Set(all.filter((c) => releasedAtMs(c) === null && c.spec.pod.name === c.spec.source.key).map((c) => regKey(c.spec.source.namespace, c.spec.source.key, c.spec.network)));
    // Every reserve entry the index holds counts as wanted, whether or not it resolves right now.
    const wanted = new Set<string>();
    for (const r of index.registrations()) {
      if (!r.spec.pool || !r.spec.reserve || r.form !== 'pod') continue;
      const key = regKey(r.meta.namespace, r.key, r.network);
      wanted.add(key);
      if (covered.has(key)) continue;
      const res = index.lookup(r.meta.namespace, r.key, r.network);
      if (res.kind !== 'resolved') continue;
      const net = index.network(res.settings.network)!;
      try {
        await this.d.allocate(net, { pod: { namespace: r.meta.namespace, name: r.key, uid: '' }, node: '', containerID: '', interface: '', source: res.settings.source, settings: settingsRecord(res.settings), kind: 'reserved' });
      } catch (e) {
        log.warn({ namespace: r.meta.namespace, key: r.key, err: (e as Error).message }, 'reservation failed; will retry');
      }
    }
    for (const c of all) {
      if (c.spec.kind !== 'reserved' || c.spec.pod.uid || releasedAtMs(c) !== null) continue;
      if (wanted.has(regKey(c.spec.source.namespace, c.spec.source.key, c.spec.network))) continue;
      const why = await this.goneBecause(c);
      if (!why) continue;
      try {
        await this.d.claims.delete(c.metadata!.name!, { uid: c.metadata?.uid, resourceVersion: c.metadata?.resourceVersion });
      } catch (e) {
        if (isNotFound(e) || isConflict(e)) continue; // released or taken by a pod meanwhile
        throw e;
      }
      this.released++;
      log.info({ ip: c.spec.ip, network: c.spec.network, key: c.spec.source.key, why }, 'reservation released: its registration is gone');
    }
  }

  /** Why the reservation's registration is gone, from a fresh read; null while it (may) exist. */
  private async goneBecause(c: IPClaim): Promise<string | null> {
    const src = c.spec.source;
    let cm: k8s.V1ConfigMap;
    try {
      cm = await this.d.core.readNamespacedConfigMap({ namespace: src.namespace, name: src.configMap });
    } catch (e) {
      if (isNotFound(e)) return `configmap ${src.namespace}/${src.configMap} is deleted`;
      throw e;
    }
    if (cm.metadata?.labels?.[REGISTRATION_LABEL.key] !== REGISTRATION_LABEL.value) return `configmap ${src.namespace}/${src.configMap} is no longer a registration`;
    if (!Object.hasOwn(cm.data ?? {}, src.key)) return `key "${src.key}" was removed from configmap ${src.namespace}/${src.configMap}`;
    // The key is there: released only if the index has read this very version and sees no reservation.
    for (const r of this.d.index.registrations()) {
      if (r.meta.namespace !== src.namespace || r.meta.name !== src.configMap || r.key !== src.key) continue;
      if (r.meta.resourceVersion === cm.metadata?.resourceVersion && !(r.spec.pool && r.spec.reserve)) return `key "${src.key}" no longer asks for a reservation`;
    }
    return null;
  }
}
