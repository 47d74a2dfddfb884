/** Runs one bundled scenario in its own process: `node run-one.js <scenario.js>`. */
import { mkdirSync } from 'node:fs';
import { basename } from 'node:path';
import type { Scenario } from '../lib/scenario';
import { ScenarioAborted, T } from '../lib/tap';

async function main(file: string): Promise<number> {
  // A CNI scenario runs once per mode of the CNI matrix (run.sh); its lines and outputs say which.
  const mode = process.env.SRIOV_UNDERLAY_TEST_CNI;
  const name = `${basename(file, '.js')}${mode ? `[${mode}]` : ''}`;
  const t = new T(name);
  const outDir = `${process.env.VM_OUT ?? '/run/vmout'}/${name}`;
  mkdirSync(outDir, { recursive: true });
  const deferred: (() => Promise<void> | void)[] = [];
  const { scenario } = require(file) as { scenario: Scenario };
  try {
    await scenario.run({ t, project: process.env.VM_PROJECT ?? process.cwd(), outDir, defer: (fn) => deferred.push(fn) });
  } catch (err) {
    if (!(err instanceof ScenarioAborted)) t.ok(false, 'scenario threw', err instanceof Error ? err.stack ?? err.message : String(err));
  }
  for (const fn of deferred.reverse()) {
    try {
      await fn();
    } catch (err) {
      t.comment(`teardown: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (t.passed + t.failed === 0) t.ok(false, 'assertions', 'the scenario asserted nothing');
  return t.failed === 0 ? 0 : 1;
}

const file = process.argv[2];
if (!file) {
  console.error('usage: node run-one.js <scenario.js>');
  process.exit(2);
}
main(file).then((code) => process.exit(code));
