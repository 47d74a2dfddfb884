import { getSystemErrorName } from 'node:util';
import { CniCode, UnderlayError } from '../errors';

export function errnoName(errno: number): string {
  try {
    const name = getSystemErrorName(-Math.abs(errno));
    // Linux has one number for both; the kernel and iproute2 speak of EOPNOTSUPP.
    return name === 'ENOTSUP' ? 'EOPNOTSUPP' : name;
  } catch {
    return `E${errno}`;
  }
}

/** The kernel refused a netlink request (or the socket failed). */
export class NetlinkError extends UnderlayError {
  readonly errnoName: string;

  constructor(
    /** what we asked, e.g. "set vf 0 max_tx_rate on ens1f0" */
    readonly op: string,
    /** positive errno */
    readonly errno: number,
    /** the kernel's extended ack message, when it sent one */
    readonly extack?: string,
    options?: { cause?: unknown },
  ) {
    const name = errnoName(errno);
    super(CniCode.NetlinkFailure, `${op}: ${name} (errno ${errno})${extack ? `: ${extack}` : ''}`, undefined, options);
    this.name = 'NetlinkError';
    this.errnoName = name;
  }
}
