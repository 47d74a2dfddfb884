/**
 * Turn zod issues into one message that names the object, the key and the field, e.g.
 *   netconf "sriov-net": field "vlan": Too big: expected number to be <=4094
 * Used by every schema so errors read the same everywhere.
 */
import type { core } from 'zod/mini';

export function describeIssues(objectLabel: string, issues: readonly core.$ZodIssue[]): string {
  const parts = issues.map((i) => {
    const field = i.path.length ? i.path.map(String).join('.') : '(root)';
    return `field "${field}": ${i.message}`;
  });
  return `${objectLabel}: ${parts.join('; ')}`;
}

/** The first invalid field's dotted path, for callers that must name exactly one. */
export function firstField(issues: readonly core.$ZodIssue[]): string {
  const p = issues[0]?.path ?? [];
  return p.length ? p.map(String).join('.') : '(root)';
}
