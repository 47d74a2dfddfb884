/**
 * gRPC service definitions for kubelet's device-plugin and plugin-registration APIs, built from the
 * bundled .proto texts (no file system access, so they work inside the single executable).
 * Field names are kept exactly as in the .proto (keepCase) so code and wire names match.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { DEVICE_PLUGIN_V1BETA1_PROTO } from './deviceplugin-v1beta1';
import { PLUGIN_REGISTRATION_V1_PROTO } from './pluginregistration-v1';

export const DEVICE_PLUGIN_API_VERSION = 'v1beta1';
export const KUBELET_SOCKET_NAME = 'kubelet.sock';
export const HEALTHY = 'Healthy';
export const UNHEALTHY = 'Unhealthy';

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

interface Loaded {
  pkg: grpc.GrpcObject;
  /** protobufjs reflection of the same text, for checking raw request bytes (node/device-plugin/rpc-wire.ts) */
  root: protobuf.Root;
}

function load(text: string): Loaded {
  const root = protobuf.parse(text, { keepCase: true }).root;
  root.resolveAll();
  return { pkg: grpc.loadPackageDefinition(protoLoader.fromJSON(root.toJSON(), LOADER_OPTIONS)), root };
}

interface ServiceCtor {
  service: grpc.ServiceDefinition;
  new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions): grpc.Client;
}

let cache: { dp: Loaded; reg: Loaded } | undefined;
function loaded(): { dp: Loaded; reg: Loaded } {
  cache ??= { dp: load(DEVICE_PLUGIN_V1BETA1_PROTO), reg: load(PLUGIN_REGISTRATION_V1_PROTO) };
  return cache;
}
const pkgs = () => ({ dp: loaded().dp.pkg, reg: loaded().reg.pkg });

/** The request message type of each method of v1beta1.DevicePlugin, by method name. */
export function devicePluginRequestTypes(): Map<string, protobuf.Type> {
  const svc = loaded().dp.root.lookupService('v1beta1.DevicePlugin');
  return new Map(Object.values(svc.methods).map((m) => [m.name, m.resolvedRequestType!]));
}

function service(pkg: grpc.GrpcObject, ns: string, name: string): ServiceCtor {
  const space = pkg[ns] as grpc.GrpcObject | undefined;
  const ctor = space?.[name] as ServiceCtor | undefined;
  if (!ctor?.service) throw new Error(`proto: service ${ns}.${name} missing`);
  return ctor;
}

/** v1beta1.DevicePlugin: served by the plugin. */
export const devicePluginService = (): ServiceCtor => service(pkgs().dp, 'v1beta1', 'DevicePlugin');
/** v1beta1.Registration: served by kubelet (legacy registration). */
export const kubeletRegistrationService = (): ServiceCtor => service(pkgs().dp, 'v1beta1', 'Registration');
/** pluginregistration.Registration: served by the plugin in plugins_registry/. */
export const pluginWatcherService = (): ServiceCtor => service(pkgs().reg, 'pluginregistration', 'Registration');

/** gRPC address of a unix socket path. */
export const unixAddress = (socketPath: string): string => `unix://${socketPath}`;

// Wire shapes (keepCase names) of the messages this project sends or receives.
export interface NumaNodeMsg { ID: number }
export interface DeviceMsg { ID: string; health: string; topology?: { nodes: NumaNodeMsg[] } | null }
export interface ListAndWatchResponseMsg { devices: DeviceMsg[] }
export interface DevicePluginOptionsMsg { pre_start_required: boolean; get_preferred_allocation_available: boolean }
export interface RegisterRequestMsg { version: string; endpoint: string; resource_name: string; options?: DevicePluginOptionsMsg | null }
export interface DeviceSpecMsg { container_path: string; host_path: string; permissions: string }
export interface MountMsg { container_path: string; host_path: string; read_only: boolean }
export interface ContainerAllocateResponseMsg {
  envs: Record<string, string>;
  mounts: MountMsg[];
  devices: DeviceSpecMsg[];
  annotations: Record<string, string>;
  cdi_devices: { name: string }[];
}
export interface AllocateResponseMsg { container_responses: ContainerAllocateResponseMsg[] }
export interface PreferredAllocationResponseMsg { container_responses: { deviceIDs: string[] }[] }
export interface PluginInfoMsg { type: string; name: string; endpoint: string; supported_versions: string[] }
export interface RegistrationStatusMsg { plugin_registered: boolean; error: string }
