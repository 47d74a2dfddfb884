/**
 * Pod and node facts read fresh from the API, and a pod's identity as the container runtime (and
 * so the CNI) sees it. For a static pod, kubelet runs the pod from its manifest under the
 * manifest's config hash as UID; the pod the API shows is its *mirror*, with a UID of its own and
 * the hash in the `kubernetes.io/config.mirror` annotation. Claims record the UID the CNI got, so
 * every comparison with the API goes through runtimeUid.
 */
import type * as k8s from '@kubernetes/client-node';
import { isNotFound } from './client';

export const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';

/** The UID the runtime knows the pod by: the config hash for a mirror pod, else metadata.uid. */
export function runtimeUid(pod: Pick<k8s.V1Pod, 'metadata'>): string | null {
  const mirror = pod.metadata?.annotations?.[MIRROR_POD_ANNOTATION];
  if (mirror) return mirror;
  return pod.metadata?.uid ?? null;
}

/**
 * The runtime UID of the pod with this name now, or null when there is none: a fresh GET (never a
 * cache), used before a hand-over.
 */
export function podUidGetter(core: k8s.CoreV1Api): (namespace: string, name: string) => Promise<string | null> {
  return async (namespace, name) => {
    try {
      return runtimeUid(await core.readNamespacedPod({ namespace, name }));
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  };
}

/** Whether a Node object of this name exists now (a fresh GET): the deleted-node rule of claims. */
export function nodeExistsGetter(core: k8s.CoreV1Api): (name: string) => Promise<boolean> {
  return async (name) => {
    try {
      await core.readNode({ name });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  };
}
