/**
 * Entry of the node daemon executable (dist/bin/sriov-underlay-node). Each component is started
 * on its own according to --components; today that is the device plugin.
 */
import { stderrLogger, type Logger } from '../src/log';
import { DevicePluginDaemon } from './daemon';
import { FlagError, parseFlags, USAGE } from './flags';
import type { NodeFlags } from '../src/schemas/node-flags';

interface Component {
  stop(): Promise<void>;
}

async function startDevicePlugin(flags: NodeFlags, log: Logger): Promise<Component> {
  const daemon = new DevicePluginDaemon({
    kubeletDir: flags['kubelet-dir'],
    sysfsRoot: flags['sysfs-root'],
    configPath: flags.config,
    devinfoDir: flags['devinfo-dir'] === '' ? null : flags['devinfo-dir'],
    registrationMode: flags['registration-mode'],
    rescanMs: flags['rescan-interval-ms'],
    log: log.child({ component: 'device-plugin' }),
  });
  await daemon.start();
  const metrics = flags['metrics-address'] === '' ? null : await daemon.metrics.listen(flags['metrics-address'], log);
  return {
    async stop() {
      metrics?.server.close();
      await daemon.stop();
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  let flags: NodeFlags;
  try {
    flags = parseFlags(argv);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    process.stderr.write(`sriov-underlay-node: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = stderrLogger(flags['log-level'], { name: 'sriov-underlay-node' });
  const components: Component[] = [];
  try {
    if (flags.components.includes('device-plugin')) components.push(await startDevicePlugin(flags, log));
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'start-up failed');
    await Promise.all(components.map((c) => c.stop()));
    return 1;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping');
  await Promise.all(components.map((c) => c.stop()));
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`sriov-underlay-node: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
