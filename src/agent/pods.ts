/** Pod facts the agent confirms with the API server itself (never from a cache): used before a hand-over. */
import type * as k8s from '@kubernetes/client-node';
import { isNotFound } from '../kube/client';

export function podUidGetter(core: k8s.CoreV1Api): (namespace: string, name: string) => Promise<string | null> {
  return async (namespace, name) => {
    try {
      const pod = await core.readNamespacedPod({ namespace, name });
      return pod.metadata?.uid ?? null;
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  };
}
