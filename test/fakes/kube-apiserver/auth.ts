// Bearer-token authentication as kube-apiserver's token authenticators do it: a token maps to a
// user (name, uid, groups, extra). The node-bound service account tokens of the node agents carry
// `authentication.kubernetes.io/node-name` in extra, which admission policies read.
import type http from 'node:http';
import { failure } from './status';

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/** The user of the fake's main token: a cluster admin, as a kubeadm admin.conf. */
export const ADMIN: UserInfo = { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] };

/** With authentication off every request is this user (the real server's anonymous + AlwaysAllow). */
export const ANONYMOUS: UserInfo = { username: 'system:anonymous', groups: ['system:unauthenticated'] };

/**
 * The user a service account token of a pod on `node` authenticates as (kube ≥ 1.30 adds the
 * node name and pod to the extra of bound tokens: ServiceAccountTokenPodNodeInfo).
 */
export function serviceAccountUser(namespace: string, name: string, node?: string, pod?: string): UserInfo {
  const extra: Record<string, string[]> = {};
  if (node) extra[NODE_NAME_EXTRA] = [node];
  if (pod) extra['authentication.kubernetes.io/pod-name'] = [pod];
  return {
    username: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
    extra,
  };
}

/** The request's user; 401 Unauthorized for a missing or unknown token when authentication is on. */
export function authenticate(req: http.IncomingMessage, users: Map<string, UserInfo> | null): UserInfo {
  if (users === null) return ANONYMOUS;
  const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  const user = m ? users.get(m[1]!) : undefined;
  if (!user) throw failure(401, 'Unauthorized', 'Unauthorized');
  return user;
}
