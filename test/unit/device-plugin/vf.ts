import type { VfRecord } from '../../../node/device-plugin/discovery';

/** A VF record as discovery would produce it, for pure tests of selection and placement. */
export function vf(pci: string, over: Partial<VfRecord> = {}): VfRecord {
  return {
    pciAddr: pci,
    vendor: '8086',
    device: '10ca',
    driver: 'igbvf',
    numaNode: 0,
    iommuGroup: 7,
    pfPciAddr: '0000:81:00.0',
    pfNetdev: 'ens1f0',
    vfIndex: 0,
    netdevs: ['ens1f0v0'],
    userspace: false,
    linkType: 'ether',
    topologyNode: 0,
    ...over,
  };
}
