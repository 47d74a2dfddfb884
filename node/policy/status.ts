/** The node policy's status types live with the SriovNodeState schema (one schema per object). */
export type { PfPolicyStatus, PolicyCondition, NodePolicyStatus } from '../../src/schemas/node-state';
