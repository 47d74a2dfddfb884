import { it, expect } from 'vitest';
import { crdValidators } from '../../fixtures/crd-schema';
import { loadCrds, schemaErrors } from '../../fakes/kube-apiserver/schemas';

it('the CRD validator used with the fake API server flags undeclared claim fields; the fake\'s schema check flags unsupported values', () => {
  const v = crdValidators().ipclaims!;
  expect(v({ spec: { ip: '1', network: 'n', containerId: 'x' } }).map((e) => e.field)).toEqual(['spec.containerId']);
  expect(v({ spec: { ip: '1', network: 'n', settings: { anything: 1 } } })).toEqual([]);
  const claim = loadCrds().find((c) => c.plural === 'ipclaims')!.schema;
  expect(schemaErrors(claim, { spec: { ip: '1', network: 'n', kind: 'bogus' } }).map((e) => e.field)).toEqual(['spec.kind']);
  expect(schemaErrors(claim, { spec: { ip: '', network: 'n' } }).map((e) => e.message)).toEqual(['Invalid value: "": spec.ip in body should be at least 1 chars long']);
  expect(schemaErrors(claim, {}).map((e) => e.field)).toEqual(['spec']);
});
