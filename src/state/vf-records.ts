/**
 * Where the CNI's VF records live: <stateDir>/vfs/<pci>.json (the allocation marker plus original
 * state) and <stateDir>/attachments/<containerId>_<ifName> (which VF an attachment holds, for DEL and
 * GC calls that carry no deviceID).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniCode, UnderlayError } from '../errors';
import { PCI_ADDR_RE } from '../sysfs/pci';
import { VF_RECORD_MAX_BYTES, vfRecordSchema, type VfRecord } from '../schemas/vf-record';
import { removeFileDurable, writeFileDurable } from './atomic-file';
import { readBounded, readJsonFile } from './bounded-file';

export class VfRecords {
  constructor(readonly stateDir: string) {}

  private vfFile(pci: string) {
    return path.join(this.stateDir, 'vfs', `${pci}.json`);
  }

  private attachmentFile(containerId: string, ifName: string) {
    return path.join(this.stateDir, 'attachments', `${containerId}_${ifName}`);
  }

  read(pci: string): VfRecord | undefined {
    const file = this.vfFile(pci);
    const rec = readJsonFile(file, vfRecordSchema, VF_RECORD_MAX_BYTES, 'VF record');
    // The name says which VF the record is for; a record claiming another VF is not this one's.
    if (rec && rec.pciAddr !== pci) throw new UnderlayError(CniCode.DecodeFailure, `VF record ${file}: field "pciAddr": is ${rec.pciAddr}, not ${pci}`);
    return rec;
  }

  /** Durable before returning: callers change the device only after this. */
  write(rec: VfRecord): void {
    writeFileDurable(this.vfFile(rec.pciAddr), JSON.stringify(rec));
    writeFileDurable(this.attachmentFile(rec.containerId, rec.ifName), rec.pciAddr);
  }

  /** A later update of the same attachment: the attachment index already points here. */
  update(rec: VfRecord): void {
    writeFileDurable(this.vfFile(rec.pciAddr), JSON.stringify(rec));
  }

  /** Removed last, after the VF is restored: until then DEL can always be retried. */
  remove(rec: Pick<VfRecord, 'pciAddr' | 'containerId' | 'ifName'>): void {
    const att = this.attachmentFile(rec.containerId, rec.ifName);
    if (this.attachmentPci(rec.containerId, rec.ifName) === rec.pciAddr) removeFileDurable(att);
    removeFileDurable(this.vfFile(rec.pciAddr));
  }

  removeAttachment(containerId: string, ifName: string): void {
    removeFileDurable(this.attachmentFile(containerId, ifName));
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

  /** Every VF record (for GC). Unreadable records are reported, not skipped silently. */
  all(): { records: VfRecord[]; errors: string[] } {
    const dir = path.join(this.stateDir, 'vfs');
    const records: VfRecord[] = [];
    const errors: string[] = [];
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return { records, errors };
    }
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      try {
        const r = this.read(n.slice(0, -5));
        if (r) records.push(r);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    return { records, errors };
  }
}
