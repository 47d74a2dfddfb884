/**
 * Which device pool a VF belongs to, for the node agent's check that a network is carried only by
 * VFs of its pools. With the device plugin in the same process, its own pool state answers (the
 * pools kubelet was told about); without it, the pools config and sysfs, with the same selectors.
 */
import type { DevicePluginDaemon } from './daemon';
import { loadPoolsConfig } from './config';
import { discover } from './discovery';
import { firstMatchingPool, fullResourceName } from './selectors';

export function poolOfFromDaemon(dp: DevicePluginDaemon): (pciAddr: string) => string | null {
  return (pci) => dp.poolStates().find((st) => st.devices.has(pci))?.resource ?? null;
}

/** Read on every call: ADDs are rare, and a config or driver change is then seen at once. */
export function poolOfFromConfig(sysfsRoot: string, configPath: string): (pciAddr: string) => string | null {
  return (pci) => {
    const vf = discover(sysfsRoot).vfs.find((v) => v.pciAddr === pci);
    if (!vf) return null;
    const pools = loadPoolsConfig(configPath).pools;
    const i = firstMatchingPool(pools, vf);
    return i < 0 ? null : fullResourceName(pools[i]!);
  };
}
