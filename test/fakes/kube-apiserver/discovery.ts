// Discovery documents, so client tooling (KubernetesObjectApi, kubectl) can find our resources.
import type http from 'node:http';
import { notFoundPath, send } from './http';
import type { ResourceDef } from './resources';

/** Answers discovery paths; false when `path` is not one. */
export function serveDiscovery(resources: ResourceDef[], address: string, path: string, res: http.ServerResponse): boolean {
  const p = path.replace(/\/+$/, '') || '/';
  const groups = [...new Set(resources.filter((r) => r.group).map((r) => r.group))];
  const versionsOf = (g: string) => [...new Set(resources.filter((r) => r.group === g).map((r) => r.version))];
  const groupDoc = (g: string) => {
    const versions = versionsOf(g).map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
    return { name: g, versions, preferredVersion: versions[0] };
  };
  const resourceList = (g: string, v: string) => ({
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: g ? `${g}/${v}` : v,
    resources: resources.filter((r) => r.group === g && r.version === v).flatMap((r) => {
      const main = {
        name: r.plural, singularName: r.singular, namespaced: r.namespaced, kind: r.kind,
        verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
        ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
      };
      const status = { name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] };
      const posts = (r.createSubresources ?? []).map((sub) => ({ name: `${r.plural}/${sub}`, singularName: '', namespaced: r.namespaced, kind: sub === 'eviction' ? 'Eviction' : r.kind, ...(sub === 'eviction' ? { group: 'policy', version: 'v1' } : {}), verbs: ['create'] }));
      return [main, ...(r.statusSubresource ? [status] : []), ...posts];
    }),
  });
  if (p === '/version') {
    send(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-sriov-underlay-fake', platform: 'linux/amd64' });
  } else if (p === '/healthz' || p === '/readyz' || p === '/livez') {
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
  } else if (p === '/api') {
    send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: address }] });
  } else if (p === '/api/v1') {
    send(res, 200, resourceList('', 'v1'));
  } else if (p === '/apis') {
    send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(groupDoc) });
  } else {
    const m = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(p);
    if (!m || !groups.includes(m[1]!)) return false;
    if (m[2] === undefined) send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(m[1]!) });
    else if (versionsOf(m[1]!).includes(m[2])) send(res, 200, resourceList(m[1]!, m[2]));
    else throw notFoundPath();
  }
  return true;
}
