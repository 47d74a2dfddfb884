/**
 * kubelet's PodResources API v1 (k8s.io/kubelet/pkg/apis/podresources/v1), written from the public
 * definition. Kept as a string so the single executable carries it (no file system access).
 */
export const POD_RESOURCES_V1_PROTO = `// kubelet PodResources API, version v1 (package k8s.io/kubelet/pkg/apis/podresources/v1).
// Written for sriov-underlay from the public API definition: message and field numbers match
// kubelet's, so this file talks to a real kubelet. Served on the unix socket
// /var/lib/kubelet/pod-resources/kubelet.sock.
syntax = "proto3";

package v1;

// The kubelet's view of which node resources pods and containers hold.
service PodResourcesLister {
  // Every pod on the node with its containers' devices, CPUs and memory.
  rpc List(ListPodResourcesRequest) returns (ListPodResourcesResponse) {}
  // Everything the node can hand out, used or not.
  rpc GetAllocatableResources(AllocatableResourcesRequest) returns (AllocatableResourcesResponse) {}
  // One pod only. Behind the KubeletPodResourcesGet feature gate: without it the kubelet answers
  // with an error (code Unknown, "PodResources API Get method disabled"); kubelets older than
  // 1.27 do not have the method at all (code Unimplemented).
  rpc Get(GetPodResourcesRequest) returns (GetPodResourcesResponse) {}
}

message AllocatableResourcesRequest {}

message AllocatableResourcesResponse {
  repeated ContainerDevices devices = 1;
  repeated int64 cpu_ids = 2;
  repeated ContainerMemory memory = 3;
}

message ListPodResourcesRequest {}

message ListPodResourcesResponse {
  repeated PodResources pod_resources = 1;
}

message PodResources {
  string name = 1;
  string namespace = 2;
  repeated ContainerResources containers = 3;
}

message ContainerResources {
  string name = 1;
  repeated ContainerDevices devices = 2;
  repeated int64 cpu_ids = 3;
  repeated ContainerMemory memory = 4;
  repeated DynamicResource dynamic_resources = 5;
}

message ContainerMemory {
  string memory_type = 1;
  uint64 size = 2;
  TopologyInfo topology = 3;
}

// Devices of one resource (e.g. a VF pool) given to a container. For SR-IOV VFs the device IDs
// are what the device plugin advertised: the VFs' PCI addresses.
message ContainerDevices {
  string resource_name = 1;
  repeated string device_ids = 2;
  TopologyInfo topology = 3;
}

message TopologyInfo {
  repeated NUMANode nodes = 1;
}

message NUMANode {
  int64 ID = 1;
}

message DynamicResource {
  string class_name = 1;
  string claim_name = 2;
  string claim_namespace = 3;
  repeated ClaimResource claim_resources = 4;
}

message ClaimResource {
  repeated CDIDevice cdi_devices = 1;
}

message CDIDevice {
  // Fully qualified CDI device name, e.g. vendor.com/class=device.
  string name = 1;
}

message GetPodResourcesRequest {
  string pod_name = 1;
  string pod_namespace = 2;
}

message GetPodResourcesResponse {
  PodResources pod_resources = 1;
}
`;
