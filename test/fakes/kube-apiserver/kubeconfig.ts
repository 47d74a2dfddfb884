// An ordinary kubeconfig file pointing at the fake, so clients load it like any cluster's.
import { writeFileSync } from 'node:fs';

export interface KubeconfigInput {
  server: string;
  token: string | null;
  namespace?: string;
  /** The server's CA (PEM) for an https server; without it the kubeconfig skips verification. */
  caPem?: string;
}

export function kubeconfigYaml({ server, token, namespace = 'default', caPem }: KubeconfigInput): string {
  // client-node refuses plain http unless the cluster says insecure-skip-tls-verify; https servers
  // are verified against their CA, as a cluster's are.
  const trust = caPem ? `    certificate-authority-data: ${Buffer.from(caPem).toString('base64')}` : '    insecure-skip-tls-verify: true';
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: fake',
    '  cluster:',
    `    server: ${server}`,
    trust,
    'users:',
    '- name: fake',
    token === null ? '  user: {}' : `  user:\n    token: ${token}`,
    'contexts:',
    '- name: fake',
    '  context:',
    '    cluster: fake',
    '    user: fake',
    `    namespace: ${namespace}`,
    'current-context: fake',
    '',
  ].join('\n');
}

export function writeKubeconfig(path: string, input: KubeconfigInput): void {
  writeFileSync(path, kubeconfigYaml(input), { mode: 0o600 });
}
