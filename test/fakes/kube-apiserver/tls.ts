// The fake's own certificate authority: generated at start with Debian's openssl (node:crypto can
// sign nothing X.509), so clients verify the server as they would a cluster's, with the CA that the
// emitted kubeconfig carries as certificate-authority-data. Nothing is written outside a temp dir.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ServingCert {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** A CA and a serving certificate signed by it for `hosts` (IP addresses or DNS names), valid 2 days. */
export function makeServingCert(hosts: string[]): ServingCert {
  const dir = mkdtempSync(join(tmpdir(), 'fakekube-ca-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=fake-kube-apiserver-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=fake-kube-apiserver');
    const names = [...new Set(['127.0.0.1', 'localhost', ...hosts])].filter((h) => h !== '0.0.0.0' && h !== '::');
    const san = names.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    writeFileSync(join(dir, 'ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
      '-out', 'server.crt', '-extfile', 'ext');
    const read = (f: string) => readFileSync(join(dir, f), 'utf8');
    return { caPem: read('ca.crt'), certPem: read('server.crt'), keyPem: read('server.key') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
