// Status objects with the reasons, codes and message wording of the real apiserver, so client code
// that branches on `reason` or `code` behaves as it would against a cluster.
import type { FieldError } from './types';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: { reason: string; message: string; field?: string }[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** Thrown inside request handling; the router turns it into the HTTP response. */
export class ApiError extends Error {
  constructor(readonly status: Status) {
    super(status.message ?? status.reason ?? 'error');
  }
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): ApiError {
  // An empty reason is StatusReasonUnknown, which the real server leaves out of the JSON.
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, ...(reason ? { reason } : {}), code };
  if (details) s.details = details;
  return new ApiError(s);
}

/** "configmaps" for core, "ipclaims.sriov-underlay.io" for grouped resources, as in messages. */
export function qualified(plural: string, group: string): string {
  return group ? `${plural}.${group}` : plural;
}

export const notFound = (plural: string, group: string, name: string) =>
  failure(404, 'NotFound', `${qualified(plural, group)} "${name}" not found`, detailsOf(plural, group, name));

export const alreadyExists = (plural: string, group: string, name: string) =>
  failure(409, 'AlreadyExists', `${qualified(plural, group)} "${name}" already exists`, detailsOf(plural, group, name));

export const conflict = (plural: string, group: string, name: string, why: string) =>
  failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(plural, group)} "${name}": ${why}`,
    detailsOf(plural, group, name));

export const STALE_OBJECT = 'the object has been modified; please apply your changes to the latest version and try again';

export function invalid(kind: string, group: string, name: string, errors: FieldError[]): ApiError {
  const text = errors.map((e) => `${e.field}: ${e.message}`).join(', ');
  const details: StatusDetails = {
    name,
    kind,
    causes: errors.map((e) => ({ reason: e.reason, message: e.message, field: e.field })),
  };
  if (group) details.group = group;
  const shown = group ? `${kind}.${group}` : kind;
  return failure(422, 'Invalid', `${shown} "${name}" is invalid: ${errors.length > 1 ? `[${text}]` : text}`, details);
}

export const badRequest = (message: string) => failure(400, 'BadRequest', message);

export const expired = (message: string) => failure(410, 'Expired', message);

export function success(plural: string, group: string, name: string, uid: string | undefined): Status {
  const details = detailsOf(plural, group, name);
  if (uid) details.uid = uid;
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details, code: 200 };
}

function detailsOf(plural: string, group: string, name: string): StatusDetails {
  const d: StatusDetails = { name, kind: plural };
  if (group) d.group = group;
  return d;
}
