/*
 * The pod sandbox's only process, as kubelet's pause image has: hold the pod's namespaces open,
 * sleep until SIGINT or SIGTERM (then exit 0), and reap any child re-parented to it (it is PID 1
 * of the pod when the pod shares its PID namespace). Built static so the image needs no libc.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction q = {.sa_handler = quit};
  struct sigaction r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  if (sigaction(SIGINT, &q, NULL) < 0 || sigaction(SIGTERM, &q, NULL) < 0 || sigaction(SIGCHLD, &r, NULL) < 0) return 1;
  for (;;) pause();
}
