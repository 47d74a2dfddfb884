/**
 * Prometheus metrics, computed from the daemon's state at scrape time (nothing to keep in sync).
 */
import type * as http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../../src/log';
import { serveMetrics } from '../metrics-http';

export interface MetricsSource {
  pools(): Array<{ resource: string; total: number; healthy: number; allocated: number; registered: boolean }>;
  configErrors(): number;
}

export class DevicePluginMetrics {
  readonly registry = new Registry();
  readonly allocations: Counter<'resource' | 'result'>;
  readonly registrations: Counter<'resource' | 'result'>;
  readonly allocateSeconds: Histogram<'resource'>;

  constructor(source: MetricsSource) {
    const reg = this.registry;
    new Gauge({
      name: 'sriov_underlay_dp_pool_devices',
      help: 'Devices advertised per pool, by state (total, healthy, allocated).',
      labelNames: ['resource', 'state'],
      registers: [reg],
      collect() {
        this.reset();
        for (const p of source.pools()) {
          this.set({ resource: p.resource, state: 'total' }, p.total);
          this.set({ resource: p.resource, state: 'healthy' }, p.healthy);
          this.set({ resource: p.resource, state: 'allocated' }, p.allocated);
        }
      },
    });
    new Gauge({
      name: 'sriov_underlay_dp_pool_registered',
      help: '1 when kubelet accepted the pool\'s registration, else 0.',
      labelNames: ['resource'],
      registers: [reg],
      collect() {
        this.reset();
        for (const p of source.pools()) this.set({ resource: p.resource }, p.registered ? 1 : 0);
      },
    });
    new Gauge({
      name: 'sriov_underlay_dp_config_errors',
      help: 'Problems found in the pools config the daemon last loaded (rejected pools, bad fields).',
      registers: [reg],
      collect() {
        this.set(source.configErrors());
      },
    });
    this.allocations = new Counter({
      name: 'sriov_underlay_dp_allocate_total',
      help: 'Allocate calls answered, by result (ok, or the gRPC status of the refusal).',
      labelNames: ['resource', 'result'],
      registers: [reg],
    });
    this.allocateSeconds = new Histogram({
      name: 'sriov_underlay_dp_allocate_seconds',
      help: 'Time the daemon spent answering Allocate (validation, response, device-info files).',
      labelNames: ['resource'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05],
      registers: [reg],
    });
    this.registrations = new Counter({
      name: 'sriov_underlay_dp_registration_events_total',
      help: 'Registration outcomes (registered, refused, unreachable, pending).',
      labelNames: ['resource', 'result'],
      registers: [reg],
    });
  }

  /** Serve GET /metrics on host:port. Resolves with the bound port. */
  listen(address: string, log: Logger): Promise<{ server: http.Server; port: number }> {
    return serveMetrics(this.registry, address, log);
  }
}
