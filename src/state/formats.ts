/**
 * Every format one release writes and another may read, in one place: the on-disk files of the
 * CNI's private state dir, the release queue it shares with the node daemon, and the wire protocols
 * between programs that a rolling upgrade can pair across releases. docs/upgrade.md has the same
 * table (test/unit/state/formats.test.ts keeps the two equal).
 *
 * The rules (docs/upgrade.md):
 * - A file names its format version in a field (`version` or `v`), or in its path where the
 *   released reader takes the whole content as data (the attachment index).
 * - A reader accepts every version that ever shipped and migrates it on read.
 * - A version newer than any it knows is refused (FormatTooNewError): the error names the file, the
 *   format, the version and the release that wrote it (`writtenBy`); the file is never guessed at,
 *   set aside, deleted or overwritten.
 * - A release keeps writing the oldest version that holds what it needs, so the release before it
 *   can still read it after a rollback.
 *
 * Imported by the CNI: no heavy imports here.
 */
import { CniCode, UnderlayError } from '../errors';

/** This release; stamped into every state file it writes (`writtenBy`). */
export const THIS_RELEASE = '0.2.0';
/** Releases that shipped before this one, oldest first. */
export const SHIPPED_RELEASES = ['0.1.0'] as const;

export type FormatId = 'vf-record' | 'attachment-index' | 'ipam-pending' | 'claim-release' | 'agent-protocol' | 'cni-server-protocol';

export interface FormatSpec {
  id: FormatId;
  /** What a message calls one such file or message. */
  label: string;
  /** A file on disk, or messages on a socket (a rolling upgrade pairs releases on both). */
  kind: 'file' | 'wire';
  /** Where it lives (or which socket carries it). */
  where: string;
  writer: string;
  reader: string;
  /**
   * The field that holds the version; null when the version is part of the path (a released reader
   * takes the whole content as data, so no field can be added) or of the protocol's greeting.
   */
  versionField: 'version' | 'v' | null;
  /** The version of a file without the field (it shipped before the field existed); null: required. */
  versionWhenAbsent: number | null;
  /** Versions this release reads. */
  reads: readonly number[];
  /** The version this release writes. */
  writes: number;
  /** The release that first wrote each version. */
  since: Readonly<Record<number, string>>;
}

export const FORMATS: readonly FormatSpec[] = [
  {
    id: 'vf-record',
    kind: 'file',
    label: 'VF record',
    where: '<stateDir>/vfs/<pci>.json',
    writer: 'CNI',
    reader: 'CNI; node policy (read-only mount)',
    versionField: 'version',
    versionWhenAbsent: null,
    reads: [1],
    writes: 1,
    since: { 1: '0.1.0' },
  },
  {
    id: 'attachment-index',
    kind: 'file',
    label: 'attachment index entry',
    where: '<stateDir>/attachments/<containerId>_<ifName>',
    writer: 'CNI',
    reader: 'CNI',
    versionField: null,
    versionWhenAbsent: 1,
    reads: [1],
    writes: 1,
    since: { 1: '0.1.0' },
  },
  {
    id: 'ipam-pending',
    kind: 'file',
    label: 'queued IPAM release',
    where: '<stateDir>/ipam-pending/<containerId>_<ifName>.json',
    writer: 'CNI',
    reader: 'CNI',
    versionField: 'v',
    versionWhenAbsent: 1,
    reads: [1],
    writes: 1,
    since: { 1: '0.1.0' },
  },
  {
    id: 'claim-release',
    kind: 'file',
    label: 'claim release note',
    where: '/var/lib/sriov-underlay/release-queue/<random>.json (0.1.0: <stateDir>/claim-releases/)',
    writer: 'CNI',
    reader: 'node agent (0.1.0 notes: the CNI, which moves them into the queue)',
    versionField: 'v',
    versionWhenAbsent: null,
    reads: [1],
    writes: 1,
    since: { 1: '0.1.0' },
  },
  {
    id: 'agent-protocol',
    kind: 'wire',
    label: 'agent socket message',
    where: '/run/sriov-underlay/agent.sock (one JSON line each way)',
    writer: 'CNI and node agent',
    reader: 'node agent and CNI',
    versionField: 'v',
    versionWhenAbsent: null,
    reads: [1],
    writes: 1,
    since: { 1: '0.1.0' },
  },
  {
    id: 'cni-server-protocol',
    kind: 'wire',
    label: 'CNI server greeting',
    where: '/run/sriov-underlay-cni/cni.sock (`SRIOV-UNDERLAY-CNI/<v>` greeting; docs/cni-server-protocol.md)',
    writer: 'shim and CNI server',
    reader: 'CNI server and shim',
    versionField: null,
    versionWhenAbsent: null,
    reads: [1],
    writes: 1,
    since: { 1: '0.2.0' },
  },
];

export function formatSpec(id: FormatId): FormatSpec {
  const f = FORMATS.find((s) => s.id === id);
  if (!f) throw new Error(`unknown format ${id}`);
  return f;
}

/** A file of a newer format than this release reads: refused, and left exactly as it is. */
export class FormatTooNewError extends UnderlayError {
  constructor(
    readonly file: string,
    readonly format: FormatId,
    readonly version: number,
    readonly writtenBy: string | undefined,
  ) {
    const spec = formatSpec(format);
    const by = writtenBy ? `release ${writtenBy}` : `a release newer than ${THIS_RELEASE} (the file does not say which)`;
    super(
      CniCode.FormatTooNew,
      `${spec.label} ${file} is format "${format}" version ${version}, written by ${by}; release ${THIS_RELEASE} reads only version ${spec.reads.join(', ')}: left untouched`,
      `roll the node forward to ${writtenBy ?? 'the newer release'} (or later) to handle it; see docs/upgrade.md "Rollback"`,
    );
    this.name = 'FormatTooNewError';
  }
}

/**
 * The format version of a parsed file (before its schema runs). Throws FormatTooNewError for an
 * integer version above every one this release reads. Anything else odd (a missing required field,
 * a non-integer, an older unknown number) is returned as found: the schema then calls it damaged.
 */
export function formatVersion(id: FormatId, file: string, raw: unknown): unknown {
  const spec = formatSpec(id);
  if (!spec.versionField) return spec.versionWhenAbsent;
  const obj = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
  if (!obj) return undefined;
  const v = obj[spec.versionField];
  if (v === undefined) return spec.versionWhenAbsent ?? undefined;
  if (Number.isSafeInteger(v) && (v as number) > Math.max(...spec.reads)) {
    const by = typeof obj.writtenBy === 'string' && /^[0-9A-Za-z.+-]{1,64}$/.test(obj.writtenBy) ? obj.writtenBy : undefined;
    throw new FormatTooNewError(file, id, v as number, by);
  }
  return v;
}

/** Whether an already-parsed file of this format is newer than this release reads (no throw). */
export function isTooNew(e: unknown): e is FormatTooNewError {
  return e instanceof FormatTooNewError;
}
