/**
 * What can still be used from a VF record that does not parse: empty (power loss), truncated JSON,
 * or a record from an older release that lacks fields the current schema requires. The VF's identity
 * is the file name; the original state is used only when it validates on its own, so a restore never
 * writes a guessed value to the device. Holder fields are recovered even from a truncated text, so
 * DEL can still tell its own VF from another attachment's.
 */
import { vfRecordSchema, type VfRecord } from '../schemas/vf-record';
import type { JsonFile } from './bounded-file';

export interface DamagedRecord {
  file: string;
  pciAddr: string;
  reason: string;
  /** The record rebuilt around a valid `original`, or null when the original state is lost. */
  salvaged: VfRecord | null;
  /** Who held the VF, as far as the text still says. */
  holder: { containerId?: string; ifName?: string; netns?: string };
}

const shape = vfRecordSchema.shape;

function stringField(text: string, key: string): string | undefined {
  // JSON.stringify writes `"key":"value"`; a truncated text still carries the early keys.
  const m = new RegExp(`"${key}":"((?:[^"\\\\]|\\\\.)*)"`).exec(text);
  if (!m) return undefined;
  try {
    return JSON.parse(`"${m[1]}"`) as string;
  } catch {
    return undefined;
  }
}

export function salvageVfRecord(file: string, pciAddr: string, read: Exclude<JsonFile, { state: 'missing' }>, reason: string): DamagedRecord {
  const text = read.state === 'damaged' ? read.text : JSON.stringify(read.value);
  const holder: DamagedRecord['holder'] = {};
  // A holder field that is there but fails its own schema was not torn but written wrong (or
  // planted): nothing of such a record is trusted enough to be written to the device.
  let holderInvalid = false;
  for (const k of ['containerId', 'ifName', 'netns'] as const) {
    const v = stringField(text, k);
    if (v === undefined) continue;
    if (shape[k].safeParse(v).success) holder[k] = v;
    else holderInvalid = true;
  }
  let salvaged: VfRecord | null = null;
  const raw = read.state === 'ok' && typeof read.value === 'object' && read.value !== null ? (read.value as Record<string, unknown>) : null;
  const original = raw ? shape.original.safeParse(raw.original) : null;
  if (raw && original?.success && !holderInvalid) {
    const applied = shape.applied.safeParse(raw.applied);
    const ipam = shape.ipam.safeParse(raw.ipam);
    salvaged = {
      version: 1,
      pciAddr,
      networkName: typeof raw.networkName === 'string' ? raw.networkName : '',
      containerId: holder.containerId ?? '',
      ifName: holder.ifName ?? '',
      netns: holder.netns ?? '',
      phase: 'ready',
      createdAt: typeof raw.createdAt === 'string' ? raw.createdAt : '',
      original: original.data,
      cniVersion: typeof raw.cniVersion === 'string' ? raw.cniVersion : '1.0.0',
    };
    if (applied.success && applied.data) salvaged.applied = applied.data;
    if (ipam.success && ipam.data) salvaged.ipam = ipam.data;
  }
  return { file, pciAddr, reason, salvaged, holder };
}
