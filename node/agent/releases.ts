/**
 * DEL's half in the agent: the notes the CNI queued on this node's disk (release-queue.ts) are
 * matched to the exact holder and released. A note names the container, interface, pod UID and
 * when it was queued; only claims held **on this node** by that attachment, and not written by an
 * ADD after the note was queued (ADD, DEL, ADD of one container ID), are released
 * (releaseAttachment). The queue is this node's own disk, so the note's `node` (the CNI's kernel
 * hostname, which need not be the Kubernetes node name) is only logged: the agent matches on its own
 * NODE_NAME. Then the pod is no longer running here, and Events say what was released.
 */
import { releaseAttachment, type ClaimDeps } from '../../src/ipam/claims';
import type { Logger } from '../../src/log';
import type { ClaimRelease } from '../../src/schemas/claim-release';
import { cmTarget, podKey, podTarget, type RunningPods } from './assign';
import { EVENT_REASONS, type EventRecorder } from './events';
import { ReleaseQueue } from './release-queue';

export interface ReleasesDeps {
  nodeName: string;
  claimDeps: Pick<ClaimDeps, 'claims' | 'now'>;
  running: RunningPods;
  events: EventRecorder;
  log: Logger;
  /** The queue's directory. */
  dir: string;
  retryMs?: number | undefined;
}

export class Releases {
  readonly queue: ReleaseQueue;

  constructor(private readonly d: ReleasesDeps) {
    this.queue = new ReleaseQueue({ dir: d.dir, release: (rec) => this.release(rec), log: d.log, intervalMs: d.retryMs });
  }

  start(): void {
    this.queue.start();
  }

  stop(): Promise<void> {
    return this.queue.stop();
  }

  /** Handle every queued note now. */
  drain(): Promise<void> {
    return this.queue.scan();
  }

  /** One note; throws (kept for a retry) when the API cannot be reached. */
  async release(rec: ClaimRelease): Promise<void> {
    const { nodeName, log } = this.d;
    const released = await releaseAttachment(this.d.claimDeps, {
      containerID: rec.containerId,
      interface: rec.ifName,
      node: nodeName,
      ...(rec.uid ? { uid: rec.uid } : {}),
      ...(rec.queuedAt ? { queuedAt: rec.queuedAt } : {}),
    });
    if (!rec.namespace || !rec.name) return;
    // The note names the interface, not the network: the attachments whose claims were released.
    const prefix = `${podKey(rec.namespace, rec.name)}/`;
    const gone = [...this.d.running].filter(([k, s]) => k.startsWith(prefix) && released.some((c) => c.startsWith(`${s.network}.`)));
    const was = gone[0]?.[1];
    if (released.length) {
      for (const [k] of gone) this.d.running.delete(k);
      const msg = `released ${released.join(', ')} of pod ${rec.namespace}/${rec.name} (container ${rec.containerId}, ${rec.ifName}) on node ${nodeName}`;
      log.info({ namespace: rec.namespace, pod: rec.name, uid: rec.uid, claims: released }, 'IP released');
      this.d.events.emit(podTarget({ namespace: rec.namespace, name: rec.name, uid: rec.uid }), 'Normal', EVENT_REASONS.released, msg);
      if (was) this.d.events.emit(cmTarget(was.source), 'Normal', EVENT_REASONS.released, msg);
    }
  }
}
