/**
 * Where the CNI's VF records live: <stateDir>/vfs/<pci>.json (the allocation marker plus original
 * state) and <stateDir>/attachments/<containerId>_<ifName> (which VF an attachment holds, for DEL and
 * GC calls that carry no deviceID).
 */
import * as path from 'node:path';
import { CniCode, UnderlayError } from '../errors';
import { describeIssues } from '../schemas/format';
import { PCI_ADDR_RE } from '../sysfs/pci';
import { VF_RECORD_MAX_BYTES, vfRecordSchema, type VfRecord } from '../schemas/vf-record';
import { formatVersion, THIS_RELEASE } from './formats';
import { listEntries, removeFile, removeFileDurably, replaceFile, setAside, writeFileDurable } from './atomic-file';
import { readBounded, readJsonState } from './bounded-file';
import { salvageVfRecord, type DamagedRecord } from './vf-record-salvage';

/** The bytes of a record as this release writes it (format version 1, which 0.1.0 reads too). */
export function encodeVfRecord(rec: VfRecord): string {
  return JSON.stringify({ ...rec, version: 1, writtenBy: THIS_RELEASE });
}

/** The version a torn record's text still names (JSON.stringify writes it first), as an object. */
function versionInText(text: string): unknown {
  const m = /^\s*\{\s*"version"\s*:\s*(\d{1,9})\b/.exec(text);
  return m ? { version: Number(m[1]), writtenBy: /"writtenBy":"([^"]{1,64})"/.exec(text)?.[1] } : undefined;
}

export class VfRecords {
  constructor(readonly stateDir: string) {}

  vfFile(pci: string) {
    return path.join(this.stateDir, 'vfs', `${pci}.json`);
  }

  private attachmentFile(containerId: string, ifName: string) {
    return path.join(this.stateDir, 'attachments', `${containerId}_${ifName}`);
  }

  read(pci: string): VfRecord | undefined {
    const r = this.load(pci);
    if (r.damaged) throw new UnderlayError(CniCode.IoFailure, `state file ${r.damaged.file} is unusable: ${r.damaged.reason}`);
    return r.rec;
  }

  /** Like read, but a damaged record comes back with whatever could be salvaged instead of throwing. */
  load(pci: string): { rec?: VfRecord; damaged?: DamagedRecord } {
    const file = this.vfFile(pci);
    // Bounded, never through a symlink (throws for those: planted, not torn); empty or truncated
    // text comes back as damaged.
    const r = readJsonState(file, VF_RECORD_MAX_BYTES);
    if (r.state === 'missing') return {};
    // A newer release's record is refused before anything is salvaged from it (throws, naming the
    // file, the format and the release): its fields may mean something this release cannot know.
    formatVersion('vf-record', file, r.state === 'ok' ? r.value : versionInText(r.text));
    if (r.state === 'damaged') return { damaged: salvageVfRecord(file, pci, r, r.reason) };
    const parsed = vfRecordSchema.safeParse(r.value);
    if (!parsed.success) return { damaged: salvageVfRecord(file, pci, r, describeIssues(`VF record ${file}`, parsed.error.issues)) };
    // The name says which VF the record is for; a record claiming another VF is not this one's.
    if (parsed.data.pciAddr !== pci) return { damaged: salvageVfRecord(file, pci, r, `VF record ${file}: field "pciAddr": is ${parsed.data.pciAddr}, not ${pci}`) };
    return { rec: parsed.data };
  }

  /** Move a damaged record out of the readers' way, kept for the operator (never deleted). */
  setAsideDamaged(d: DamagedRecord): string | null {
    return setAside(d.file);
  }

  /**
   * The record is durable when this settles (fsync of file and dir, on the libuv pool so the CNI
   * server's other calls go on meanwhile): callers change the device only after that. The attachment index is written atomically but not fsynced (two journal commits
   * saved per ADD): it is only a lookup for a DEL without deviceID, read through a PCI-address
   * check, so an index lost or emptied by a power loss reads as "no VF recorded", and the record it
   * pointed to stays in vfs/ for GC and the next ADD on the VF to restore from. A SIGKILL cannot
   * lose it (the page cache outlives the process).
   */
  async write(rec: VfRecord): Promise<void> {
    await writeFileDurable(this.vfFile(rec.pciAddr), encodeVfRecord(rec), { dir: true });
    replaceFile(this.attachmentFile(rec.containerId, rec.ifName), rec.pciAddr);
  }

  /**
   * A later update of the same attachment (the index already points here). Content fsynced, rename
   * not waited for: a power loss leaves this update or the record write() made durable, both
   * complete records of the same attachment with the same original state.
   */
  async update(rec: VfRecord): Promise<void> {
    await writeFileDurable(this.vfFile(rec.pciAddr), encodeVfRecord(rec), { dir: false });
  }

  /**
   * Removed last, after the VF is restored: until then DEL can always be retried. The record's
   * removal is durable when this settles (it is gone for every reader as soon as it is called: the
   * unlink comes before the first await); the index entry's is not (an entry a power loss brings back
   * points to a record that is gone or another attachment's, which DEL checks before it touches
   * anything).
   */
  async remove(rec: Pick<VfRecord, 'pciAddr' | 'containerId' | 'ifName'>): Promise<void> {
    const att = this.attachmentFile(rec.containerId, rec.ifName);
    if (this.attachmentPci(rec.containerId, rec.ifName) === rec.pciAddr) removeFile(att);
    await removeFileDurably(this.vfFile(rec.pciAddr));
  }

  /** Not fsynced, as in remove(). */
  removeAttachment(containerId: string, ifName: string): void {
    removeFile(this.attachmentFile(containerId, ifName));
  }

  /** The VF the attachment holds. Only a PCI address counts: it becomes a lock and record file name. */
  attachmentPci(containerId: string, ifName: string): string | undefined {
    let text: string;
    try {
      text = readBounded(this.attachmentFile(containerId, ifName), 64)?.toString('utf8').trim() ?? '';
    } catch {
      return undefined;
    }
    return PCI_ADDR_RE.test(text) ? text : undefined;
  }

  /** Every VF record (for GC). Damaged records come back with what could be salvaged. */
  all(): { records: VfRecord[]; damaged: DamagedRecord[]; errors: string[] } {
    const records: VfRecord[] = [];
    const damaged: DamagedRecord[] = [];
    const errors: string[] = [];
    for (const n of listEntries(path.join(this.stateDir, 'vfs'), '.json')) {
      try {
        const r = this.load(n.slice(0, -5));
        if (r.rec) records.push(r.rec);
        if (r.damaged) damaged.push(r.damaged);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    return { records, damaged, errors };
  }
}
