/**
 * PF-side VF settings: read the VF's line in the PF's IFLA_VFINFO_LIST, apply a change and read it
 * back. A driver that accepts a request but does not apply it is caught by the read-back, not
 * trusted (sriov-cni #119: options the NIC refuses must never leave the VF half-configured).
 */
import { CniCode, UnderlayError } from '../errors';
import type { Rtnl, VfInfo } from '../netlink';
import type { VfSettings } from '../schemas/vf-record';

export type VfPatch = Partial<VfSettings>;

export const VF_FIELDS = ['mac', 'vlan', 'qos', 'vlanProto', 'spoofchk', 'trust', 'linkState', 'minTxRate', 'maxTxRate'] as const;

export function toSettings(v: VfInfo): VfSettings {
  const s: VfSettings = {
    mac: v.mac.toLowerCase(),
    vlan: v.vlan,
    qos: v.qos,
    vlanProto: v.vlanProto,
    minTxRate: v.minTxRate,
    maxTxRate: v.maxTxRate,
  };
  if (v.spoofchk !== undefined) s.spoofchk = v.spoofchk;
  if (v.trust !== undefined) s.trust = v.trust;
  if (v.linkState !== undefined) s.linkState = v.linkState;
  return s;
}

/** The VF's current PF-side settings, or null when the PF reports no VF table at all. */
export function readVfSettings(rt: Rtnl, pfNetdev: string, vfIndex: number): VfSettings | null {
  const pf = rt.getLink(pfNetdev, { vfs: true });
  if (!pf) throw new UnderlayError(CniCode.DeviceNotFound, `PF netdev ${pfNetdev} not found in the host netns`);
  if (pf.vfs === undefined) return null;
  const v = pf.vfs.find((x) => x.vf === vfIndex);
  if (!v) throw new UnderlayError(CniCode.DeviceNotFound, `PF ${pfNetdev} has no VF ${vfIndex} in its VF table`);
  return toSettings(v);
}

/** Fields of `want` whose value differs from `live`. */
export function diffSettings(live: VfSettings, want: VfPatch): (keyof VfSettings)[] {
  const out: (keyof VfSettings)[] = [];
  for (const f of VF_FIELDS) {
    const w = want[f];
    if (w === undefined) continue;
    const l = live[f];
    const same = typeof w === 'string' && typeof l === 'string' ? w.toLowerCase() === l.toLowerCase() : w === l;
    if (!same) out.push(f);
  }
  return out;
}

/**
 * Bring the VF's PF-side settings to `want`, touching only fields that differ from the live value
 * (so restoring an unchanged field never provokes a driver that refuses the attribute outright).
 * Groups are applied the way iproute2 sends them: vlan+qos+proto together, min+max rate together.
 */
export function applyVfSettings(rt: Rtnl, pfNetdev: string, pfIndex: number, vfIndex: number, want: VfPatch): void {
  const live = readVfSettings(rt, pfNetdev, vfIndex);
  if (live === null) {
    const asked = VF_FIELDS.filter((f) => want[f] !== undefined);
    if (asked.length === 0) return;
    throw new UnderlayError(
      CniCode.DriverRefused,
      `PF ${pfNetdev} reports no VF table, so the PF-side settings ${asked.join(', ')} cannot be applied to VF ${vfIndex}`,
      'the PF driver does not expose IFLA_VFINFO_LIST; remove the PF-side settings from the netconf/registration',
    );
  }
  const changed = new Set(diffSettings(live, want));
  if (changed.size === 0) return;
  const set = (what: string, patch: VfPatch) => {
    try {
      rt.setVf(pfIndex, vfIndex, patch);
    } catch (e) {
      throw new UnderlayError(
        CniCode.DriverRefused,
        `the ${pfNetdev} driver refused ${what} on VF ${vfIndex}: ${(e as Error).message}`,
        undefined,
        { cause: e },
      );
    }
  };
  if (changed.has('vlan') || changed.has('qos') || changed.has('vlanProto')) {
    const vlan = want.vlan ?? live.vlan;
    const patch: VfPatch = { vlan, qos: want.qos ?? live.qos };
    const proto = want.vlanProto ?? (vlan === 0 ? undefined : live.vlanProto);
    if (proto !== undefined && (proto !== '802.1Q' || changed.has('vlanProto'))) patch.vlanProto = proto;
    set(`vlan ${patch.vlan} qos ${patch.qos}${patch.vlanProto ? ` proto ${patch.vlanProto}` : ''}`, patch);
  }
  if (changed.has('mac')) set(`mac ${want.mac}`, { mac: want.mac });
  if (changed.has('minTxRate') || changed.has('maxTxRate')) {
    const minTxRate = want.minTxRate ?? live.minTxRate;
    const maxTxRate = want.maxTxRate ?? live.maxTxRate;
    set(`min_tx_rate ${minTxRate} max_tx_rate ${maxTxRate}`, { minTxRate, maxTxRate });
  }
  if (changed.has('spoofchk')) set(`spoofchk ${want.spoofchk ? 'on' : 'off'}`, { spoofchk: want.spoofchk });
  if (changed.has('trust')) set(`trust ${want.trust ? 'on' : 'off'}`, { trust: want.trust });
  if (changed.has('linkState')) set(`state ${want.linkState}`, { linkState: want.linkState });

  const after = readVfSettings(rt, pfNetdev, vfIndex);
  const still = after ? diffSettings(after, want) : VF_FIELDS.filter((f) => want[f] !== undefined);
  if (still.length) {
    const got = still.map((f) => `${f}=${String(after?.[f])} (wanted ${String(want[f])})`).join(', ');
    throw new UnderlayError(CniCode.DriverRefused, `the ${pfNetdev} driver accepted but did not apply on VF ${vfIndex}: ${got}`);
  }
}
