import { it, expect } from 'vitest';
import { crdValidators } from '../../fixtures/crd-schema';
it('the CRD validator used with the fake API server flags undeclared and unsupported claim fields', () => {
  const v = crdValidators().ipclaims!;
  expect(v({ spec: { ip: '1', network: 'n', containerId: 'x' } }).map((e) => e.field)).toEqual(['spec.containerId']);
  expect(v({ spec: { ip: '1', network: 'n', kind: 'bogus', settings: { anything: 1 } } }).map((e) => e.field)).toEqual(['spec.kind']);
});
