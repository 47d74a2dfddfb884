/** Exit codes of kubectl-sriov (documented in docs/cli.md) and the error that carries one. */
export const EXIT = {
  ok: 0,
  /** validate found errors; explain: the pod's registration is rejected; gc: something could not be released. */
  problems: 1,
  /** bad command line */
  usage: 2,
  /** explain: the pod has no registration */
  notFound: 3,
  /** an input file is unreadable or not valid YAML/JSON */
  input: 4,
  /** the Kubernetes API failed (unreachable, forbidden, ...) */
  api: 5,
} as const;

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}
