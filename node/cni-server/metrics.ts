/**
 * The CNI server's Prometheus metrics: how long each command took, by result, and how many run now
 * (as Multus's thick plugin exposes them). Labels are bounded: command is one of the six CNI
 * commands or "invalid", result is ok, error-<CNI code>, deadline, late-<result>.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CallObserver } from './server';

export class CniServerMetrics implements CallObserver {
  readonly registry = new Registry();
  private readonly seconds: Histogram<'command' | 'result'>;
  private readonly inFlight: Gauge;
  private readonly refusals: Counter<'reason'>;

  constructor() {
    const registers = [this.registry];
    this.seconds = new Histogram({
      name: 'sriov_underlay_cni_server_command_seconds',
      help: 'Time from a complete request to the command\'s end, by CNI command and result (ok, error-<CNI code>, deadline, late-<result> for one that ended after its deadline reply).',
      labelNames: ['command', 'result'],
      // From a warm VERSION (sub-millisecond) to an ADD waiting on the VF lock or a slow IPAM.
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 100],
      registers,
    });
    this.inFlight = new Gauge({ name: 'sriov_underlay_cni_server_in_flight', help: 'Commands running now.', registers });
    this.refusals = new Counter({
      name: 'sriov_underlay_cni_server_refused_total',
      help: 'Connections closed without running anything, by reason (peer-not-root, peer-unknown, bad-request, read-timeout).',
      labelNames: ['reason'],
      registers,
    });
  }

  started(): void {
    this.inFlight.inc();
  }

  finished(command: string, result: string, seconds: number): void {
    this.seconds.observe({ command, result }, seconds);
    // A deadline reply is not the command's end: the gauge drops when the command really ends.
    if (result !== 'deadline') this.inFlight.dec();
  }

  refused(reason: string): void {
    this.refusals.inc({ reason });
  }
}
