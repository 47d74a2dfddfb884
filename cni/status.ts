/**
 * STATUS (CNI 1.1): ready only when this node can really do an ADD: the native netlink layer loads
 * and answers, the state dir is writable, sysfs is readable, and the IPAM plugin reports ready.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniCode, UnderlayError } from '../src/errors';
import { Rtnl } from '../src/netlink';
import type { NetConf } from '../src/schemas/netconf';
import { makeCtx } from './context';
import { execIpam } from './ipam';
import type { Invocation } from './skel';

export async function cmdStatus(inv: Invocation, conf: NetConf): Promise<void> {
  const ctx = makeCtx(conf);
  const fail = (msg: string) => new UnderlayError(CniCode.PluginNotAvailable, msg);
  try {
    const rt = Rtnl.open();
    try {
      if (!rt.getLink('lo')) throw new Error('loopback not visible over rtnetlink');
    } finally {
      rt.close();
    }
  } catch (e) {
    throw fail(`netlink unavailable: ${(e as Error).message}`);
  }
  try {
    fs.mkdirSync(ctx.stateDir, { recursive: true, mode: 0o700 });
    fs.accessSync(ctx.stateDir, fs.constants.W_OK);
  } catch (e) {
    throw fail(`state dir ${ctx.stateDir} is not writable: ${(e as Error).message}`);
  }
  if (!fs.existsSync(path.join(ctx.sysfsRoot, 'bus/pci/devices'))) throw fail(`sysfs root ${ctx.sysfsRoot} has no bus/pci/devices`);
  if (conf.ipam) await execIpam({ command: 'STATUS', type: conf.ipam.type, cniPath: inv.cniPath, env: inv.rawEnv, stdin: inv.stdin });
}
