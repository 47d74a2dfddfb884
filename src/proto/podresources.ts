/**
 * kubelet PodResources v1: the .proto loaded with @grpc/proto-loader, plus TypeScript shapes of
 * its messages as proto-loader presents them (camelCase fields, int64 as number). Shared by the
 * node agent (client) and the test fake (server).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { POD_RESOURCES_V1_PROTO } from './podresources-v1';

export const POD_RESOURCES_SOCKET = '/var/lib/kubelet/pod-resources/kubelet.sock';

export interface NumaNode { ID: number }
export interface TopologyInfo { nodes: NumaNode[] }
export interface ContainerDevices { resourceName: string; deviceIds: string[]; topology: TopologyInfo | null }
export interface ContainerMemory { memoryType: string; size: number; topology: TopologyInfo | null }
export interface CdiDevice { name: string }
export interface ClaimResource { cdiDevices: CdiDevice[] }
export interface DynamicResource { className: string; claimName: string; claimNamespace: string; claimResources: ClaimResource[] }
export interface ContainerResources {
  name: string;
  devices: ContainerDevices[];
  cpuIds: number[];
  memory: ContainerMemory[];
  dynamicResources: DynamicResource[];
}
export interface PodResources { name: string; namespace: string; containers: ContainerResources[] }
export interface ListPodResourcesResponse { podResources: PodResources[] }
export interface GetPodResourcesRequest { podName: string; podNamespace: string }
export interface GetPodResourcesResponse { podResources: PodResources | null }
export interface AllocatableResourcesResponse { devices: ContainerDevices[]; cpuIds: number[]; memory: ContainerMemory[] }

const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: true, arrays: true, oneofs: true };

/** The PodResourcesLister service: `.service` for servers, the constructor itself for clients. */
export function loadPodResourcesLister(): grpc.ServiceClientConstructor {
  const root = protobuf.parse(POD_RESOURCES_V1_PROTO, { keepCase: false }).root;
  const def = protoLoader.fromJSON(root.toJSON(), LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { v1: { PodResourcesLister: grpc.ServiceClientConstructor } };
  return pkg.v1.PodResourcesLister;
}
