/**
 * kubelet's plugin-watcher registration API (pluginregistration v1), as a .proto text bundled with
 * the executable. The plugin serves it on a socket in <kubelet-dir>/plugins_registry/; kubelet
 * dials every socket that appears there.
 */
export const PLUGIN_REGISTRATION_V1_PROTO = `
syntax = "proto3";
package pluginregistration;

message PluginInfo {
  // "DevicePlugin" for device plugins
  string type = 1;
  // for device plugins: the extended resource name
  string name = 2;
  // for device plugins: absolute path of the DevicePlugin service socket
  string endpoint = 3;
  repeated string supported_versions = 4;
}

message RegistrationStatus {
  bool plugin_registered = 1;
  string error = 2;
}

message RegistrationStatusResponse {}

message InfoRequest {}

service Registration {
  rpc GetInfo(InfoRequest) returns (PluginInfo) {}
  rpc NotifyRegistrationStatus(RegistrationStatus) returns (RegistrationStatusResponse) {}
}
`;
