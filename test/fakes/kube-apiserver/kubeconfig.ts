// An ordinary kubeconfig file pointing at the fake, so clients load it like any cluster's.
import { writeFileSync } from 'node:fs';

export interface KubeconfigInput {
  server: string;
  token: string | null;
  namespace?: string;
}

export function kubeconfigYaml({ server, token, namespace = 'default' }: KubeconfigInput): string {
  // client-node refuses plain http unless the cluster says insecure-skip-tls-verify.
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: fake',
    '  cluster:',
    `    server: ${server}`,
    '    insecure-skip-tls-verify: true',
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
