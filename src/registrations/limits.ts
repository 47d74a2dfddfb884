/**
 * Bounds on what the agent accepts from a ConfigMap, checked before any YAML is parsed where they
 * can be (sizes, key counts) and by the schemas otherwise (list lengths). One ConfigMap is fed to
 * every node's agent, whose event loop also serves the device plugin's gRPC and the liveness probe:
 * a hostile or mistaken object must cost milliseconds, be rejected with a message naming it, and
 * leave every other registration served. docs/registrations.md "Limits" explains each figure.
 */

/** Sum of the data keys and values of one ConfigMap (the API server's own object limit is 1 MiB). */
export const MAX_CONFIGMAP_BYTES = 1024 * 1024;
/** Data keys of one registration or network ConfigMap. */
export const MAX_KEYS_PER_CONFIGMAP = 5000;
/** The YAML text of one key: room for the largest entry allowed (1,024 dual-stack pairs); YAML costs ~1 ms per KiB on a quiet core. */
export const MAX_VALUE_BYTES = 64 * 1024;
/** Addresses of one `ips` or `ips6` list (StatefulSet ordinals). */
export const MAX_ADDRESSES_PER_ENTRY = 1024;
/** Attachments (networks) of one pod's registration key. */
export const MAX_ATTACHMENTS = 8;
/** `routes` of a registration or a network; `ranges`/`exclude` of a network. */
export const MAX_ROUTES = 64;
export const MAX_RANGES = 256;
/** Names in a network's `allowedNamespaces` and `pools`. */
export const MAX_ALLOWED_NAMESPACES = 1000;
export const MAX_POOLS = 64;

/** Bytes of a ConfigMap's data as the API server counts them (UTF-8 keys and values). */
export function dataBytes(data: Record<string, string>): number {
  let n = 0;
  for (const k in data) n += Buffer.byteLength(k) + Buffer.byteLength(String(data[k]));
  return n;
}
