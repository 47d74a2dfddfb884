// Server-side printing: a client that asks for `application/json;as=Table;v=v1;g=meta.k8s.io`
// (kubectl get) gets a meta.k8s.io/v1 Table, with a CRD's additionalPrinterColumns for custom
// resources and a few columns of kube's own printers for built-in kinds.
import type http from 'node:http';
import type { ResourceDef } from './resources';
import type { PrinterColumn } from './schemas';
import { type KubeObject, isRecord } from './types';

export function wantsTable(req: http.IncomingMessage): boolean {
  return (req.headers.accept ?? '').split(',').some((part) => {
    const p = part.split(';').map((x) => x.trim());
    return p.includes('as=Table') && p.includes('g=meta.k8s.io') && (p.includes('v=v1') || p.includes('v=v1beta1'));
  });
}

/** kube's duration.HumanDuration, which the server's printers use for ages and date columns. */
export function age(iso: string | undefined, now = Date.now()): string {
  const t = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(t)) return iso ? '<invalid>' : '<unknown>';
  const sec = Math.floor((now - t) / 1000);
  if (sec < -1) return '<invalid>';
  if (sec < 0) return '0s';
  if (sec < 120) return `${sec}s`;
  const min = Math.floor(sec / 60);
  if (min < 10) return sec % 60 === 0 ? `${min}m` : `${min}m${sec % 60}s`;
  if (min < 180) return `${min}m`;
  const h = Math.floor(min / 60);
  if (h < 8) return min % 60 === 0 ? `${h}h` : `${h}h${min % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24)}d`;
  const y = Math.floor(h / 24 / 365);
  if (y < 8) return `${y}y${Math.floor(h / 24) % 365}d`;
  return `${y}y`;
}

/** A simple JSONPath as CRD printer columns use (`.spec.pod.name`). */
function jsonPath(o: unknown, path: string): unknown {
  let cur = o;
  for (const k of path.replace(/^\./, '').split('.').filter(Boolean)) cur = isRecord(cur) ? cur[k] : undefined;
  return cur;
}

interface Column extends PrinterColumn {
  cell: (o: KubeObject) => unknown;
}

const NAME: Column = { name: 'Name', type: 'string', jsonPath: '.metadata.name', description: 'Name must be unique within a namespace.', cell: (o) => o.metadata.name };
const AGE: Column = { name: 'Age', type: 'string', jsonPath: '', description: 'Time since creation.', cell: (o) => age(o.metadata.creationTimestamp) };
const field = (o: KubeObject, ...p: string[]) => jsonPath(o, p.join('.'));

const BUILTIN_COLUMNS: Record<string, Column[]> = {
  configmaps: [NAME, { name: 'Data', type: 'integer', jsonPath: '', cell: (o) => Object.keys(isRecord(o.data) ? o.data : {}).length + Object.keys(isRecord(o.binaryData) ? o.binaryData : {}).length }, AGE],
  namespaces: [NAME, { name: 'Status', type: 'string', jsonPath: '', cell: (o) => field(o, 'status', 'phase') ?? '' }, AGE],
  pods: [NAME, { name: 'Status', type: 'string', jsonPath: '', cell: (o) => (o.metadata.deletionTimestamp ? 'Terminating' : field(o, 'status', 'phase') ?? '') }, { name: 'Node', type: 'string', jsonPath: '', priority: 1, cell: (o) => field(o, 'spec', 'nodeName') ?? '<none>' }, AGE],
};

/** The columns of a resource: the CRD's additionalPrinterColumns (after Name), or the built-in printer's. */
export function columnsFor(res: ResourceDef, crdColumns: PrinterColumn[] | undefined): Column[] {
  if (res.custom) {
    const extra = (crdColumns ?? []).map((c): Column => ({
      ...c,
      // As kube's CRD table convertor: a date column shows the age of its timestamp.
      cell: (o) => {
        const v = jsonPath(o, c.jsonPath);
        if (v === undefined) return null;
        if (c.type === 'date') return typeof v === 'string' ? age(v) : null;
        return c.type === 'string' && typeof v !== 'string' ? JSON.stringify(v) : v;
      },
    }));
    return [NAME, ...(extra.length ? extra : [{ ...AGE, type: 'date' }])];
  }
  return BUILTIN_COLUMNS[res.plural] ?? [NAME, AGE];
}

/** One Table for a list (or one object); `includeObject` None | Metadata (default) | Object. */
export function toTable(columns: Column[], objects: KubeObject[], listMeta: Record<string, unknown>, includeObject: string | null): Record<string, unknown> {
  const embed = (o: KubeObject) => {
    if (includeObject === 'None') return undefined;
    if (includeObject === 'Object') return o;
    return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
  };
  return {
    kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: listMeta,
    columnDefinitions: columns.map((c) => ({
      name: c.name, type: c.type === 'date' ? 'date' : c.type, format: c === NAME ? 'name' : '', description: c.description ?? '', priority: c.priority ?? 0,
    })),
    rows: objects.map((o) => ({ cells: columns.map((c) => c.cell(o) ?? null), object: embed(o) })),
  };
}
