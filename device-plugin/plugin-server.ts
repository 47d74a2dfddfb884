/**
 * One gRPC server per pool, on its own unix socket, serving kubelet's DevicePlugin service (and, in
 * plugin-watcher mode, the pluginregistration service on the same socket, so kubelet's watcher
 * finds the plugin and the plugin in one place).
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../src/log';
import { describeIssues } from '../src/schemas/format';
import type { z } from 'zod';
import {
  DEVICE_PLUGIN_API_VERSION,
  devicePluginService,
  pluginWatcherService,
  unixAddress,
  type AllocateResponseMsg,
  type DevicePluginOptionsMsg,
  type ListAndWatchResponseMsg,
  type PluginInfoMsg,
  type PreferredAllocationResponseMsg,
  type RegistrationStatusMsg,
} from '../src/proto';
import { AllocateRequestSchema, PreferredAllocationRequestSchema, PreStartContainerRequestSchema } from '../src/schemas/device-plugin-rpc';
import { containerAllocation } from './allocate';
import { fileIdentity } from './dir-watch';
import type { PoolState } from './pool-state';
import { preferredAllocation } from './preferred';

/** A gRPC error with a status code, as grpc-js expects from handlers. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const MAX_SOCKET_PATH = 107; // sun_path is 108 bytes including the NUL

export interface PluginServerOptions {
  state: PoolState;
  socketPath: string;
  log: Logger;
  devinfoDir: string | null;
  /** Called after a successful Allocate with the PCI addresses handed out and the time it took. */
  onAllocated: (resource: string, pcis: string[], ms: number) => void;
  /** Called when an RPC is answered with an error (for metrics). */
  onRpcError?: (rpc: string, code: grpc.status) => void;
  /** Set in plugin-watcher mode: kubelet's verdict on our registration. */
  onRegistrationStatus?: (status: RegistrationStatusMsg) => void;
}

function badRequest(what: string, err: z.ZodError): RpcError {
  return new RpcError(grpc.status.INVALID_ARGUMENT, describeIssues(`${what} request`, err.issues));
}

export class PluginServer {
  private server: grpc.Server | null = null;
  private streams = new Set<grpc.ServerWritableStream<unknown, ListAndWatchResponseMsg>>();
  /** Identity of the socket we created: a different one (or none) means someone removed it. */
  private socketId: string | null = null;

  constructor(private readonly opts: PluginServerOptions) {
    if (opts.socketPath.length > MAX_SOCKET_PATH) {
      throw new Error(`socket path ${opts.socketPath} is ${opts.socketPath.length} bytes, longer than a unix socket allows (${MAX_SOCKET_PATH})`);
    }
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  get resource(): string {
    return this.opts.state.resource;
  }

  get running(): boolean {
    return this.server !== null;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Is our socket file still the one we bound? (kubelet wipes device-plugins/ on restart) */
  socketIntact(): boolean {
    return this.socketId !== null && fileIdentity(this.opts.socketPath) === this.socketId;
  }

  async start(): Promise<void> {
    if (this.server) return;
    fs.rmSync(this.opts.socketPath, { force: true });
    const server = new grpc.Server();
    server.addService(devicePluginService().service, this.devicePluginHandlers());
    if (this.opts.onRegistrationStatus) server.addService(pluginWatcherService().service, this.registrationHandlers());
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(unixAddress(this.opts.socketPath), grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.server = server;
    this.socketId = fileIdentity(this.opts.socketPath);
    this.opts.log.debug({ resource: this.resource, socket: this.opts.socketPath }, 'device plugin server listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const s of this.streams) s.end();
    this.streams.clear();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 500);
      server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
    // Remove the socket only if it is still ours (a restarted kubelet may have wiped and reused the dir).
    if (this.socketIntact()) fs.rmSync(this.opts.socketPath, { force: true });
    this.socketId = null;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  private devicePluginHandlers(): grpc.UntypedServiceImplementation {
    const { state, log } = this.opts;
    const unary =
      <Req, Res>(name: string, fn: (req: Req) => Res) =>
      (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
        try {
          cb(null, fn(call.request));
        } catch (e) {
          const err = e instanceof RpcError ? e : new RpcError(grpc.status.INTERNAL, (e as Error).message);
          log.warn({ resource: state.resource, rpc: name, code: grpc.status[err.code], err: err.message }, 'rpc failed');
          this.opts.onRpcError?.(name, err.code);
          cb({ code: err.code, details: err.message });
        }
      };
    return {
      GetDevicePluginOptions: unary<unknown, DevicePluginOptionsMsg>('GetDevicePluginOptions', () => ({
        pre_start_required: false,
        get_preferred_allocation_available: true,
      })),
      ListAndWatch: (call: grpc.ServerWritableStream<unknown, ListAndWatchResponseMsg>) => {
        const send = () => call.write({ devices: state.deviceList() });
        const done = () => {
          state.off('update', send);
          this.streams.delete(call);
        };
        if (this.streams.size > 0) {
          // kubelet registered us twice. Both streams stay fed: ending one makes released kubelets
          // disconnect the newest client of the resource (see registration.ts).
          log.warn({ resource: state.resource, streams: this.streams.size + 1 }, 'kubelet opened another ListAndWatch stream for this pool');
        }
        this.streams.add(call);
        state.on('update', send);
        call.on('cancelled', done);
        call.on('close', done);
        call.on('error', done);
        send();
        log.info({ resource: state.resource, devices: state.devices.size }, 'ListAndWatch stream opened');
      },
      GetPreferredAllocation: unary<unknown, PreferredAllocationResponseMsg>('GetPreferredAllocation', (raw) => {
        const req = PreferredAllocationRequestSchema.safeParse(raw);
        if (!req.success) throw badRequest('GetPreferredAllocation', req.error);
        return {
          container_responses: req.data.container_requests.map((c) => {
            if (c.must_include_deviceIDs.length > c.allocation_size) {
              throw new RpcError(grpc.status.INVALID_ARGUMENT, `GetPreferredAllocation: ${c.must_include_deviceIDs.length} must-include devices exceed allocation_size ${c.allocation_size}`);
            }
            const unknown = c.must_include_deviceIDs.find((id) => !state.devices.has(id));
            if (unknown) throw new RpcError(grpc.status.INVALID_ARGUMENT, `GetPreferredAllocation: must-include device "${unknown}" is not in pool ${state.resource}`);
            return { deviceIDs: preferredAllocation(c.available_deviceIDs, c.must_include_deviceIDs, c.allocation_size, state.devices, state.pool.placement) };
          }),
        };
      }),
      Allocate: unary<unknown, AllocateResponseMsg>('Allocate', (raw) => {
        const t0 = performance.now();
        const req = AllocateRequestSchema.safeParse(raw);
        if (!req.success) throw badRequest('Allocate', req.error);
        // Check every ID of every container before writing anything.
        const plans = req.data.container_requests.map((c) =>
          c.devices_ids.map((id) => {
            const dev = state.devices.get(id);
            if (!dev) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Allocate: device "${id}" is not in pool ${state.resource}`);
            if (!dev.healthy) throw new RpcError(grpc.status.FAILED_PRECONDITION, `Allocate: device "${id}" of pool ${state.resource} is Unhealthy: ${dev.reason ?? 'unknown reason'}`);
            return dev.vf;
          }),
        );
        const res = { container_responses: plans.map((vfs) => containerAllocation(state.pool, vfs, this.opts.devinfoDir)) };
        const ids = plans.flat().map((v) => v.pciAddr);
        this.opts.onAllocated(state.resource, ids, performance.now() - t0);
        log.info({ resource: state.resource, devices: ids }, 'allocated');
        return res;
      }),
      PreStartContainer: unary<unknown, object>('PreStartContainer', (raw) => {
        const req = PreStartContainerRequestSchema.safeParse(raw);
        if (!req.success) throw badRequest('PreStartContainer', req.error);
        return {};
      }),
    };
  }

  private registrationHandlers(): grpc.UntypedServiceImplementation {
    return {
      GetInfo: (_call: grpc.ServerUnaryCall<unknown, PluginInfoMsg>, cb: grpc.sendUnaryData<PluginInfoMsg>) =>
        cb(null, { type: 'DevicePlugin', name: this.resource, endpoint: this.opts.socketPath, supported_versions: [DEVICE_PLUGIN_API_VERSION] }),
      NotifyRegistrationStatus: (call: grpc.ServerUnaryCall<RegistrationStatusMsg, object>, cb: grpc.sendUnaryData<object>) => {
        this.opts.onRegistrationStatus?.(call.request);
        cb(null, {});
      },
    };
  }
}
