/**
 * The one error type every layer throws. It carries a CNI error code so the CNI entry can print it
 * as the spec's error JSON without guessing, and the daemons can log it with the same fields.
 */

// CNI spec 1.1 well-known codes (1-99 reserved by the spec; 100+ are plugin-specific).
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  // CNI 1.1 STATUS
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  // plugin-specific
  DeviceBusy: 100,
  DeviceNotFound: 101,
  DriverRefused: 102,
  NetlinkFailure: 103,
  RollbackFailed: 104,
  IpConflict: 105,
  RegistrationInvalid: 106,
  CheckMismatch: 107,
  /** A state file of a newer format than this release reads (src/state/formats.ts): left untouched. */
  FormatTooNew: 108,
  Internal: 199,
} as const;
export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

export class UnderlayError extends Error {
  constructor(
    readonly code: CniCodeValue,
    message: string,
    readonly details?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UnderlayError';
  }

  /** The CNI error object (spec §"Error"), as printed on stdout. */
  toCni(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    const out: { cniVersion: string; code: number; msg: string; details?: string } = {
      cniVersion,
      code: this.code,
      msg: this.message,
    };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Wrap anything thrown into an UnderlayError without losing the original message. */
export function asUnderlayError(err: unknown, fallback: CniCodeValue = CniCode.Internal): UnderlayError {
  if (err instanceof UnderlayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new UnderlayError(fallback, message, undefined, { cause: err });
}
