import { defineConfig } from 'vitest/config';

// Two tiers run by vitest: `unit` (pure, no privileges) and `host` (root: real netns, veth, routes).
// The VM tier (real SR-IOV driver) is driven by test/vm/run.sh, not vitest.
export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000 },
      },
      {
        test: {
          name: 'host',
          include: ['test/host/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Tests share the host's network stack; run files one at a time.
          fileParallelism: false,
          // The CNI matrix: in server mode, one real CNI server for the run (docs/testing.md).
          globalSetup: ['test/host/setup/cni-server.ts'],
        },
      },
    ],
  },
});
