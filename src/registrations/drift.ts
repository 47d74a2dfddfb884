/**
 * Drift: a running pod keeps the settings it was started with; when its registration is edited,
 * removed or becomes invalid afterwards, the agent reports the difference (a log line and an
 * Event) and changes nothing on the pod.
 */
import type { LookupResult, ResolvedSettings, SourceRef } from './types';
import { formatSource } from './types';

export interface DriftChange {
  field: string;
  running: unknown;
  current: unknown;
}

export type DriftReport =
  | { kind: 'removed'; running: SourceRef; message: string }
  | { kind: 'rejected'; running: SourceRef; message: string }
  | { kind: 'changed'; running: SourceRef; current: SourceRef; changes: DriftChange[]; message: string };

const COMPARED = ['network', 'vlan', 'vlanQoS', 'vlanProto', 'ips', 'gateways', 'routes', 'mtu', 'mac', 'minTxRateMbps', 'maxTxRateMbps', 'spoofchk', 'trust'] as const;

/**
 * Compare what a pod got with what its registration says now. Null when nothing that reaches the
 * pod differs (a resourceVersion bump alone, e.g. another key of the same ConfigMap edited, is not
 * drift). A pool pod's allocated addresses are not compared: the registration names none.
 */
export function detectDrift(pod: string, running: ResolvedSettings, now: LookupResult): DriftReport | null {
  const was = formatSource(running.source);
  if (now.kind === 'not-registered') {
    return { kind: 'removed', running: running.source, message: `pod ${pod}: its registration (${was}) was removed; the running pod keeps its settings` };
  }
  if (now.kind === 'rejected') {
    return {
      kind: 'rejected',
      running: running.source,
      message: `pod ${pod}: its registration is now rejected (${now.rejection.message}); the running pod keeps the settings of ${was}`,
    };
  }
  const cur = now.settings;
  const changes: DriftChange[] = [];
  for (const f of COMPARED) {
    if (f === 'ips' && cur.pool) continue;
    const a = running[f];
    const b = cur[f];
    if (JSON.stringify(a) !== JSON.stringify(b)) changes.push({ field: f, running: a, current: b });
  }
  if (!changes.length) return null;
  const list = changes.map((c) => `${c.field}: ${JSON.stringify(c.running)} → ${JSON.stringify(c.current)}`).join(', ');
  return {
    kind: 'changed',
    running: running.source,
    current: cur.source,
    changes,
    message: `pod ${pod}: registration drift, running ${was}, now ${formatSource(cur.source)}: ${list}; the running pod is not changed`,
  };
}
