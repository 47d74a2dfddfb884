/** Process entry of the node daemon (exe/main.ts loads it; tests bundle it on its own). */
import { main } from './main';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`sriov-underlay-node: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
