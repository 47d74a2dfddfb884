/**
 * One gRPC server per pool, on its own unix socket, serving kubelet's DevicePlugin service (and, in
 * plugin-watcher mode, the pluginregistration service on the same socket, so kubelet's watcher
 * finds the plugin and the plugin in one place).
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../src/log';
import { describeIssues } from '../../src/schemas/format';
import type { z } from 'zod';
import {
  DEVICE_PLUGIN_API_VERSION,
  devicePluginRequestTypes,
  devicePluginService,
  pluginWatcherService,
  unixAddress,
  type AllocateResponseMsg,
  type DevicePluginOptionsMsg,
  type ListAndWatchResponseMsg,
  type PluginInfoMsg,
  type PreferredAllocationResponseMsg,
  type RegistrationStatusMsg,
} from '../../src/proto';
import { AllocateRequestSchema, MAX_RPC_MESSAGE_BYTES, PreferredAllocationRequestSchema, PreStartContainerRequestSchema } from '../../src/schemas/device-plugin-rpc';
import { containerAllocation } from './allocate';
import { fileIdentity } from './dir-watch';
import type { PoolState } from './pool-state';
import { preferredAllocation } from './preferred';
import { wireProblem } from './rpc-wire';

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

/** At most this many problems in one error message (a 4,096-ID list can have 4,096). */
const MAX_ISSUES = 3;

function badRequest(what: string, err: z.ZodError): RpcError {
  const more = err.issues.length - MAX_ISSUES;
  const text = describeIssues(`${what} request`, err.issues.slice(0, MAX_ISSUES)) + (more > 0 ? `; and ${more} more` : '');
  return new RpcError(grpc.status.INVALID_ARGUMENT, text);
}

/** What the strict deserializer hands a handler instead of a message when the bytes are malformed. */
class MalformedRequest {
  constructor(readonly problem: string) {}
}

/**
 * The DevicePlugin service with a strict request deserializer: malformed bytes become a
 * MalformedRequest the handler answers with INVALID_ARGUMENT naming the field (grpc-js would answer
 * a throwing deserializer with a bare INTERNAL).
 */
function strictDevicePluginService(): grpc.ServiceDefinition {
  const types = devicePluginRequestTypes();
  const def = devicePluginService().service;
  return Object.fromEntries(
    Object.entries(def).map(([name, m]) => {
      const type = types.get(name);
      if (!type) throw new Error(`proto: no request type for DevicePlugin.${name}`);
      const decode = m.requestDeserialize;
      return [name, { ...m, requestDeserialize: (buf: Buffer) => {
        const problem = wireProblem(type, buf);
        return problem ? new MalformedRequest(problem) : decode(buf);
      } }];
    }),
  ) as grpc.ServiceDefinition;
}

function malformed(rpc: string, req: unknown): RpcError | null {
  return req instanceof MalformedRequest ? new RpcError(grpc.status.INVALID_ARGUMENT, `${rpc} request: ${req.problem}`) : null;
}

function notInPool(rpc: string, field: string, id: string, resource: string): RpcError {
  return new RpcError(grpc.status.INVALID_ARGUMENT, `${rpc} request: field "${field}": device ${JSON.stringify(id)} is not in pool ${resource}`);
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
    // Bigger messages are refused by grpc-js with RESOURCE_EXHAUSTED before they are buffered whole.
    const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_RPC_MESSAGE_BYTES });
    server.addService(strictDevicePluginService(), this.devicePluginHandlers());
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
          const bad = malformed(name, call.request);
          if (bad) throw bad;
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
        const bad = malformed('ListAndWatch', call.request);
        if (bad) {
          log.warn({ resource: state.resource, rpc: 'ListAndWatch', code: grpc.status[bad.code], err: bad.message }, 'rpc failed');
          call.emit('error', { code: bad.code, details: bad.message });
          return;
        }
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
          container_responses: req.data.container_requests.map((c, i) => {
            if (c.must_include_deviceIDs.length > c.allocation_size) {
              throw new RpcError(
                grpc.status.INVALID_ARGUMENT,
                `GetPreferredAllocation request: field "container_requests.${i}.must_include_deviceIDs": ${c.must_include_deviceIDs.length} must-include devices exceed allocation_size ${c.allocation_size}`,
              );
            }
            const unknown = c.must_include_deviceIDs.findIndex((id) => !state.devices.has(id));
            if (unknown >= 0) {
              const id = c.must_include_deviceIDs[unknown]!;
              throw notInPool('GetPreferredAllocation', `container_requests.${i}.must_include_deviceIDs.${unknown}`, id, state.resource);
            }
            return { deviceIDs: preferredAllocation(c.available_deviceIDs, c.must_include_deviceIDs, c.allocation_size, state.devices, state.pool.placement) };
          }),
        };
      }),
      Allocate: unary<unknown, AllocateResponseMsg>('Allocate', (raw) => {
        const t0 = performance.now();
        const req = AllocateRequestSchema.safeParse(raw);
        if (!req.success) throw badRequest('Allocate', req.error);
        // Check every ID of every container before writing anything.
        const plans = req.data.container_requests.map((c, ci) =>
          c.devices_ids.map((id, i) => {
            const dev = state.devices.get(id);
            if (!dev) throw notInPool('Allocate', `container_requests.${ci}.devices_ids.${i}`, id, state.resource);
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
        const unknown = req.data.devices_ids.findIndex((id) => !state.devices.has(id));
        if (unknown >= 0) throw notInPool('PreStartContainer', `devices_ids.${unknown}`, req.data.devices_ids[unknown]!, state.resource);
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
