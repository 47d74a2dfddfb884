/**
 * The agent ↔ CNI protocol on the node-local unix socket: one JSON line each way per connection.
 *
 *   CNI → agent  {"v":1,"op":"lookup","namespace":"db","name":"mysql-0","uid":"…","containerId":"…","ifName":"net1","network":"vlan100","deviceID":"0000:81:10.2"}
 *   agent → CNI  {"v":1,"ok":true,"registered":true,"settings":{…PodSettings fields…},"source":{namespace,configMap,key,resourceVersion}}
 *                {"v":1,"ok":true,"registered":false,"deviceID":"0000:81:10.2"}   (no registration; maybe the VF kubelet gave it)
 *                {"v":1,"ok":false,"code":106,"message":"configmap db/r key \"mysql-0\": field \"ip\": …"}
 *
 * Both sides validate with these schemas. zod/mini only: the CNI binary imports this file.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

z.config(en());

export const PROTOCOL_VERSION = 1;
/** Where the agent listens unless configured otherwise (and what the deploy manifests mount). */
export const DEFAULT_AGENT_SOCKET = '/run/sriov-underlay/agent.sock';

const name = z.string().check(z.minLength(1), z.maxLength(253));

export const lookupRequestSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  op: z.literal('lookup'),
  namespace: name,
  name,
  uid: z.string().check(z.maxLength(64)),
  containerId: z.optional(z.string().check(z.maxLength(256))),
  ifName: z.optional(z.string().check(z.maxLength(15))),
  /** The VF the CNI was given (netconf deviceID from Multus/the device plugin): checked against the network's pools, named in claims and Events. */
  deviceID: z.optional(z.string().check(z.maxLength(64))),
  /**
   * The netconf's `name`: which of the pod's attachments this is (its registration on that
   * network). Absent, or not a defined network: the pod's only registered network (older NADs).
   */
  network: z.optional(z.string().check(z.maxLength(253))),
});
export type LookupRequest = z.infer<typeof lookupRequestSchema>;

/**
 * CNI → agent, best effort, after a failed ADD the agent should record an Event for (it answers
 * `{"v":1,"ok":true,"registered":false}`): today a duplicate address found on the wire.
 */
export const reportRequestSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  op: z.literal('report'),
  namespace: name,
  name,
  uid: z.string().check(z.maxLength(64)),
  containerId: z.optional(z.string().check(z.maxLength(256))),
  ifName: z.optional(z.string().check(z.maxLength(15))),
  reason: z.enum(['DuplicateAddress']),
  message: z.string().check(z.maxLength(1024)),
});
export type ReportRequest = z.infer<typeof reportRequestSchema>;

const sourceSchema = z.object({
  namespace: z.string(),
  configMap: z.string(),
  key: z.string(),
  resourceVersion: z.string(),
});

/** The PodSettings of cni/pod-settings.ts minus its `source` text (built from `source` below). */
export const wireSettingsSchema = z.object({
  deviceID: z.optional(z.string()),
  ips: z.optional(z.array(z.string())),
  gateways: z.optional(z.array(z.string())),
  routes: z.optional(z.array(z.object({ dst: z.string(), gw: z.optional(z.string()) }))),
  vlan: z.optional(z.int().check(z.gte(0), z.lte(4094))),
  vlanQoS: z.optional(z.int().check(z.gte(0), z.lte(7))),
  vlanProto: z.optional(z.enum(['802.1q', '802.1ad'])),
  mac: z.optional(z.string()),
  mtu: z.optional(z.int().check(z.gte(68), z.lte(65535))),
  minTxRateMbps: z.optional(z.int().check(z.gte(0))),
  maxTxRateMbps: z.optional(z.int().check(z.gte(0))),
  spoofchk: z.optional(z.boolean()),
  trust: z.optional(z.boolean()),
  /** The network's `duplicateDetection` (ARP probe / DAD in ADD). */
  duplicateDetection: z.optional(z.boolean()),
});
export type WireSettings = z.infer<typeof wireSettingsSchema>;

export const lookupAnswerSchema = z.union([
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    ok: z.literal(true),
    registered: z.literal(true),
    settings: wireSettingsSchema,
    source: sourceSchema,
  }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    ok: z.literal(true),
    registered: z.literal(false),
    deviceID: z.optional(z.string()),
  }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    ok: z.literal(false),
    code: z.int().check(z.gte(1), z.lte(999)),
    message: z.string(),
    details: z.optional(z.string()),
  }),
]);
export type LookupAnswer = z.infer<typeof lookupAnswerSchema>;
