/*
 * sriov_native: the few system calls Node cannot make on its own.
 *
 *   setns, flock, SO_PEERCRED, netlink sockets (blocking send/recv, a send on the libuv pool, a libuv watch for notifications),
 *   AF_PACKET datagram sockets, and posix_spawn with pipes and a pidfd (spawnPiped, waitPid). Message encoding and decoding stay in TypeScript (src/netlink).
 *
 * Every failure throws a JS Error carrying `errno` (positive) and `code` ("EEXIST", ...).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <net/ethernet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <node_api.h>
#include <uv.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, NULL, "sriov_native: N-API call failed: " #call);                     \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

static napi_value errno_error(napi_env env, int err, const char *syscall) {
  /* Named as errnoName() in src/netlink/errors.ts does: libuv's names (node's err.code), EOPNOTSUPP
   * for 95, E<n> when unknown. Not glibc's strerrorname_np: it needs glibc 2.32, newer than node's
   * floor (2.28), and the addon must load wherever node does. */
  char namebuf[64];
  const char *name = uv_err_name_r(-err, namebuf, sizeof namebuf);
  if (err == EOPNOTSUPP) name = "EOPNOTSUPP";
  else if (strncmp(name, "Unknown", 7) == 0) {
    snprintf(namebuf, sizeof namebuf, "E%d", err);
    name = namebuf;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", syscall, strerror(err), name);
  napi_value message, error, code, errno_v, sys;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_int32(env, err, &errno_v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "code", code);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_set_named_property(env, error, "syscall", sys);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, errno_error(env, err, syscall));
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "sriov_native: missing arguments");
    return -1;
  }
  return 0;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "sriov_native: expected a number");
    return -1;
  }
  return 0;
}

static int get_buf(napi_env env, napi_value v, void **data, size_t *len) {
  if (napi_get_buffer_info(env, v, data, len) != napi_ok) {
    napi_throw_type_error(env, NULL, "sriov_native: expected a Buffer");
    return -1;
  }
  return 0;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value null_value(napi_env env) {
  napi_value u;
  napi_get_null(env, &u);
  return u;
}

/* Wait up to timeout_ms (-1: forever) for fd to become readable. 1 ready, 0 timeout, -1 errno. */
static int wait_readable(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? -1 : r;
  }
}

/* setns(fd, nstype) */
static napi_value js_setns(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, nstype;
  if (get_args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &nstype))
    return NULL;
  if (setns(fd, nstype) != 0) return throw_errno(env, errno, "setns");
  return undefined(env);
}

/* flock(fd, op) -> true, or false when LOCK_NB was given and the lock is held elsewhere. */
static napi_value js_flock(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  int32_t fd, op;
  if (get_args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &op))
    return NULL;
  int r;
  do r = flock(fd, op);
  while (r != 0 && errno == EINTR);
  if (r != 0) {
    if (errno == EWOULDBLOCK && (op & LOCK_NB)) {
      napi_get_boolean(env, false, &out);
      return out;
    }
    return throw_errno(env, errno, "flock");
  }
  napi_get_boolean(env, true, &out);
  return out;
}

/* peerCred(fd) -> {pid, uid, gid}: SO_PEERCRED of a connected unix socket (the kernel's record of
 * who connected; Node exposes no way to read it). */
static napi_value js_peer_cred(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, v;
  int32_t fd;
  if (get_args(env, info, 1, argv) || get_i32(env, argv[0], &fd)) return NULL;
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) return throw_errno(env, errno, "getsockopt(SO_PEERCRED)");
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_int32(env, cr.pid, &v));
  CHECK(napi_set_named_property(env, out, "pid", v));
  CHECK(napi_create_uint32(env, cr.uid, &v));
  CHECK(napi_set_named_property(env, out, "uid", v));
  CHECK(napi_create_uint32(env, cr.gid, &v));
  CHECK(napi_set_named_property(env, out, "gid", v));
  return out;
}

/* close(fd) */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (get_args(env, info, 1, argv) || get_i32(env, argv[0], &fd)) return NULL;
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return undefined(env);
}

/* nlOpen(protocol, groups) -> fd. Extended acks carry the kernel's reason; capped acks keep error
 * replies short (the request is not echoed back). */
static napi_value js_nl_open(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  int32_t proto, groups;
  if (get_args(env, info, 2, argv) || get_i32(env, argv[0], &proto) || get_i32(env, argv[1], &groups))
    return NULL;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) return throw_errno(env, errno, "socket(AF_NETLINK)");
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  if (groups) {
    /* A listener must survive bursts (many VFs changing at once) without ENOBUFS. */
    int rcvbuf = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = (uint32_t)groups};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "bind(AF_NETLINK)");
  }
  napi_create_int32(env, fd, &out);
  return out;
}

/* nlSend(fd, buf[, len]) -> bytes sent */
static napi_value js_nl_send(napi_env env, napi_callback_info info) {
  napi_value argv[3], out;
  size_t argc = 3;
  int32_t fd;
  void *data;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "sriov_native: nlSend(fd, buf[, len])");
    return NULL;
  }
  if (get_i32(env, argv[0], &fd) || get_buf(env, argv[1], &data, &len)) return NULL;
  if (argc >= 3) {
    int32_t l;
    if (get_i32(env, argv[2], &l)) return NULL;
    if (l < 0 || (size_t)l > len) {
      napi_throw_range_error(env, NULL, "sriov_native: nlSend length out of range");
      return NULL;
    }
    len = (size_t)l;
  }
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  ssize_t n;
  do n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "sendto(AF_NETLINK)");
  napi_create_int32(env, (int32_t)n, &out);
  return out;
}

/* nlSendAsync(fd, buf) -> Promise<bytes sent>: nlSend on a libuv pool thread. rtnetlink does the
 * whole request inside sendmsg, so a slow one (a netns move waits out an RCU grace period, 15-25 ms)
 * blocks only that thread and the event loop goes on; the reply is then read with nlRecv. The
 * message is copied here: the caller may reuse its buffer at once. The fd must stay open and no
 * other request may use the socket until the promise settles (src/netlink/rtnl.ts ensures both). */
struct nl_send_job {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  size_t len;
  ssize_t sent;
  int err;
  unsigned char data[];
};

static void nl_send_execute(napi_env env, void *arg) {
  (void)env;
  struct nl_send_job *j = arg;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  do j->sent = sendto(j->fd, j->data, j->len, 0, (struct sockaddr *)&sa, sizeof sa);
  while (j->sent < 0 && errno == EINTR);
  j->err = j->sent < 0 ? errno : 0;
}

static void nl_send_complete(napi_env env, napi_status status, void *arg) {
  struct nl_send_job *j = arg;
  napi_value v;
  if (status != napi_ok) {
    napi_create_string_utf8(env, "sriov_native: nlSendAsync was cancelled", NAPI_AUTO_LENGTH, &v);
    napi_value e;
    napi_create_error(env, NULL, v, &e);
    napi_reject_deferred(env, j->deferred, e);
  } else if (j->err) {
    napi_reject_deferred(env, j->deferred, errno_error(env, j->err, "sendto(AF_NETLINK)"));
  } else {
    napi_create_int32(env, (int32_t)j->sent, &v);
    napi_resolve_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value js_nl_send_async(napi_env env, napi_callback_info info) {
  napi_value argv[2], promise, name;
  int32_t fd;
  void *data;
  size_t len;
  if (get_args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_buf(env, argv[1], &data, &len)) return NULL;
  struct nl_send_job *j = malloc(sizeof *j + len);
  if (!j) return throw_errno(env, ENOMEM, "nlSendAsync");
  j->fd = fd;
  j->len = len;
  j->sent = -1;
  j->err = 0;
  memcpy(j->data, data, len);
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok || napi_create_string_utf8(env, "nlSendAsync", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, nl_send_execute, nl_send_complete, j, &j->work) != napi_ok) {
    free(j);
    napi_throw_error(env, NULL, "sriov_native: nlSendAsync could not be queued");
    return NULL;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    free(j);
    napi_throw_error(env, NULL, "sriov_native: nlSendAsync could not be queued");
    return NULL;
  }
  return promise;
}

/* nlRecv(fd, timeoutMs) -> Buffer (one datagram) | null on timeout. rtnetlink answers inside the
 * sender's sendmsg, so the first non-blocking read normally succeeds without a poll. A peek with
 * MSG_TRUNC gives the datagram's full size, so the Buffer is exact and nothing is ever cut off
 * (and no static buffer is shared between worker threads). */
static napi_value js_nl_recv(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  int32_t fd, timeout;
  if (get_args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &timeout))
    return NULL;
  for (;;) {
    unsigned char probe;
    ssize_t n = recv(fd, &probe, 0, MSG_DONTWAIT | MSG_PEEK | MSG_TRUNC);
    if (n >= 0) {
      void *data;
      CHECK(napi_create_buffer(env, (size_t)n, &data, &out));
      ssize_t got;
      do got = recv(fd, data, (size_t)n, MSG_DONTWAIT);
      while (got < 0 && errno == EINTR);
      if (got < 0) return throw_errno(env, errno, "recv(AF_NETLINK)");
      if (got != n) return throw_errno(env, EMSGSIZE, "recv(AF_NETLINK)");
      return out;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return throw_errno(env, errno, "recv(AF_NETLINK)");
    if (timeout == 0) return null_value(env);
    int r = wait_readable(fd, timeout);
    if (r < 0) return throw_errno(env, errno, "poll");
    if (r == 0) return null_value(env);
  }
}

/* ---- nlWatch: call a JS function whenever the fd becomes readable (libuv poll) ---- */

typedef struct watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  struct watch *next;
} watch_t;

/* Watches belong to one Node environment (main thread or a worker): kept in its instance data. */
typedef struct {
  watch_t *watches;
} addon_state;

static addon_state *state_of(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

static void on_watch_closed(uv_handle_t *h) { free(h->data); }

static void on_readable(uv_poll_t *p, int status, int events) {
  (void)events;
  watch_t *w = p->data;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv); /* napi_make_callback needs an object receiver */
    napi_create_int32(env, status, &arg); /* 0, or a negative libuv error */
    napi_make_callback(env, w->async, recv, cb, 1, &arg, NULL);
  }
  napi_close_handle_scope(env, scope);
}

static void unwatch(watch_t *w) {
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->async);
  uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

/* nlWatch(fd, callback(status)) */
static napi_value js_nl_watch(napi_env env, napi_callback_info info) {
  napi_value argv[2], name;
  int32_t fd;
  if (get_args(env, info, 2, argv) || get_i32(env, argv[0], &fd)) return NULL;
  addon_state *st = state_of(env);
  if (!st) return throw_errno(env, EINVAL, "nlWatch");
  for (watch_t *w = st->watches; w; w = w->next)
    if (w->fd == fd) return throw_errno(env, EEXIST, "nlWatch");
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  watch_t *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, ENOMEM, "nlWatch");
  w->env = env;
  w->fd = fd;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r != 0) {
    free(w);
    return throw_errno(env, -r, "uv_poll_init");
  }
  w->poll.data = w;
  napi_create_string_utf8(env, "sriov_native.nlWatch", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_async_init(env, NULL, name, &w->async) != napi_ok) {
    uv_close((uv_handle_t *)&w->poll, on_watch_closed);
    napi_throw_error(env, NULL, "sriov_native: nlWatch setup failed");
    return NULL;
  }
  r = uv_poll_start(&w->poll, UV_READABLE, on_readable);
  if (r != 0) {
    unwatch(w);
    return throw_errno(env, -r, "uv_poll_start");
  }
  w->next = st->watches;
  st->watches = w;
  return undefined(env);
}

/* nlUnwatch(fd) -> true if a watch was removed. Call it before closing the fd. */
static napi_value js_nl_unwatch(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  int32_t fd;
  if (get_args(env, info, 1, argv) || get_i32(env, argv[0], &fd)) return NULL;
  bool found = false;
  addon_state *st = state_of(env);
  for (watch_t **pp = st ? &st->watches : NULL; pp && *pp; pp = &(*pp)->next) {
    if ((*pp)->fd == fd) {
      watch_t *w = *pp;
      *pp = w->next;
      unwatch(w);
      found = true;
      break;
    }
  }
  napi_get_boolean(env, found, &out);
  return out;
}

/* ---- AF_PACKET datagram sockets (link-layer header built by the kernel) ---- */

/* packetOpen(ifindex, ethertype) -> fd bound to that interface and protocol */
static napi_value js_packet_open(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  int32_t ifindex, ethertype;
  if (get_args(env, info, 2, argv) || get_i32(env, argv[0], &ifindex) ||
      get_i32(env, argv[1], &ethertype))
    return NULL;
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons((uint16_t)ethertype));
  if (fd < 0) return throw_errno(env, errno, "socket(AF_PACKET)");
  struct sockaddr_ll sll = {
      .sll_family = AF_PACKET, .sll_protocol = htons((uint16_t)ethertype), .sll_ifindex = ifindex};
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "bind(AF_PACKET)");
  }
  napi_create_int32(env, fd, &out);
  return out;
}

/* packetSend(fd, ifindex, dstMac, ethertype, payload) */
static napi_value js_packet_send(napi_env env, napi_callback_info info) {
  napi_value argv[5], out;
  int32_t fd, ifindex, ethertype;
  void *mac, *payload;
  size_t maclen, len;
  if (get_args(env, info, 5, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &ifindex) ||
      get_buf(env, argv[2], &mac, &maclen) || get_i32(env, argv[3], &ethertype) ||
      get_buf(env, argv[4], &payload, &len))
    return NULL;
  if (maclen > 8) {
    napi_throw_range_error(env, NULL, "sriov_native: link-layer address longer than 8 bytes");
    return NULL;
  }
  struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                            .sll_protocol = htons((uint16_t)ethertype),
                            .sll_ifindex = ifindex,
                            .sll_halen = (unsigned char)maclen};
  memcpy(sll.sll_addr, mac, maclen);
  ssize_t n;
  do n = sendto(fd, payload, len, 0, (struct sockaddr *)&sll, sizeof sll);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "sendto(AF_PACKET)");
  napi_create_int32(env, (int32_t)n, &out);
  return out;
}

/* packetRecv(fd, timeoutMs) -> { payload, srcMac, pktType } | null on timeout */
static napi_value js_packet_recv(napi_env env, napi_callback_info info) {
  napi_value argv[2], out, payload, src, type;
  int32_t fd, timeout;
  if (get_args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &timeout))
    return NULL;
  unsigned char buf[65536];
  for (;;) {
    struct sockaddr_ll sll;
    socklen_t slen = sizeof sll;
    ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&sll, &slen);
    if (n >= 0) {
      void *copy;
      CHECK(napi_create_buffer_copy(env, (size_t)n, buf, &copy, &payload));
      CHECK(napi_create_buffer_copy(env, sll.sll_halen <= 8 ? sll.sll_halen : 8, sll.sll_addr, &copy, &src));
      CHECK(napi_create_int32(env, sll.sll_pkttype, &type));
      CHECK(napi_create_object(env, &out));
      napi_set_named_property(env, out, "payload", payload);
      napi_set_named_property(env, out, "srcMac", src);
      napi_set_named_property(env, out, "pktType", type);
      return out;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return throw_errno(env, errno, "recvfrom(AF_PACKET)");
    if (timeout == 0) return null_value(env);
    int r = wait_readable(fd, timeout);
    if (r < 0) return throw_errno(env, errno, "poll");
    if (r == 0) return null_value(env);
  }
}

/* ---- processes: posix_spawn instead of libuv's fork ---- */

/* Free a NULL-terminated array of strings built by get_strv. */
static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* A JS array of strings -> NULL-terminated C array (NULL after a thrown error). A string with a NUL
 * byte is refused: C would cut it short silently. */
static char **get_strv(napi_env env, napi_value arr) {
  uint32_t n;
  if (napi_get_array_length(env, arr, &n) != napi_ok || n > 65536) {
    napi_throw_type_error(env, NULL, "sriov_native: expected an array of at most 65536 strings");
    return NULL;
  }
  char **v = calloc((size_t)n + 1, sizeof *v);
  if (!v) {
    throw_errno(env, ENOMEM, "spawnPiped");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    size_t len;
    if (napi_get_element(env, arr, i, &e) != napi_ok || napi_get_value_string_utf8(env, e, NULL, 0, &len) != napi_ok) {
      free_strv(v);
      napi_throw_type_error(env, NULL, "sriov_native: expected an array of strings");
      return NULL;
    }
    v[i] = malloc(len + 1);
    if (!v[i]) {
      free_strv(v);
      throw_errno(env, ENOMEM, "spawnPiped");
      return NULL;
    }
    napi_get_value_string_utf8(env, e, v[i], len + 1, &len);
    if (strlen(v[i]) != len) {
      free_strv(v);
      napi_throw_type_error(env, NULL, "sriov_native: a string with a NUL byte cannot be an argument or environment entry");
      return NULL;
    }
  }
  return v;
}

/* spawnPiped(file, argv, envp) -> {pid, pidfd, stdin, stdout, stderr}: the program in a new session
 * (its own process group, so a timeout can kill all it started), default signal dispositions and
 * an empty signal mask (Node ignores SIGPIPE; an exec'd plugin must not inherit that), its stdio on
 * three pipes whose other ends come back here, close-on-exec. glibc's posix_spawn is clone(CLONE_VM
 * | CLONE_VFORK): it costs the same whatever the caller's size, where libuv's fork copies the page
 * tables of the whole (large) Node process on every exec. The pidfd (pidfd_open, Linux 5.3)
 * becomes readable when the program exits: watch it with nlWatch, then reap with waitPid. The
 * stdin end comes back non-blocking. */
static napi_value js_spawn_piped(napi_env env, napi_callback_info info) {
  napi_value argv[3], out, v;
  if (get_args(env, info, 3, argv)) return NULL;
  size_t flen;
  char file[4096];
  if (napi_get_value_string_utf8(env, argv[0], file, sizeof file, &flen) != napi_ok || flen == 0 || flen >= sizeof file - 1 || strlen(file) != flen) {
    napi_throw_type_error(env, NULL, "sriov_native: spawnPiped needs a program path");
    return NULL;
  }
  char **args = get_strv(env, argv[1]);
  if (!args) return NULL;
  char **envp = get_strv(env, argv[2]);
  if (!envp) {
    free_strv(args);
    return NULL;
  }
  int in[2] = {-1, -1}, o[2] = {-1, -1}, e[2] = {-1, -1}, err = 0;
  const char *failed = "pidfd_open";
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int fa_ok = 0, attr_ok = 0;
  sigset_t all, none;
  /* A kernel without pidfd_open (before 5.3) fails here, before anything ran: ENOSYS tells the
   * caller to start the program another way. */
  int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (pidfd < 0) {
    err = errno;
    goto done;
  }
  close(pidfd);
  pidfd = -1;
  failed = "pipe2";
  if (pipe2(in, O_CLOEXEC) || pipe2(o, O_CLOEXEC) || pipe2(e, O_CLOEXEC)) {
    err = errno;
    goto done;
  }
  failed = "posix_spawn";
  if ((err = posix_spawn_file_actions_init(&fa))) goto done;
  fa_ok = 1;
  if ((err = posix_spawnattr_init(&attr))) goto done;
  attr_ok = 1;
  /* dup2 onto 0, 1, 2 clears close-on-exec there; every other fd of ours is close-on-exec. */
  if ((err = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) || (err = posix_spawn_file_actions_adddup2(&fa, o[1], 1)) ||
      (err = posix_spawn_file_actions_adddup2(&fa, e[1], 2)))
    goto done;
  /* Every signal back to its default, glibc's two internal ones (32, 33) included: sigfillset
   * leaves those out, and posix_spawn would hand them to the program ignored. */
  memset(&all, 0xff, sizeof all);
  sigemptyset(&none);
  if ((err = posix_spawnattr_setsigdefault(&attr, &all)) || (err = posix_spawnattr_setsigmask(&attr, &none)) ||
      (err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)))
    goto done;
  if ((err = posix_spawn(&pid, file, &fa, &attr, args, envp))) {
    pid = -1;
    goto done;
  }
  pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) {
    /* Cannot watch it: do not leave it running unobserved. */
    err = errno;
    failed = "pidfd_open";
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    goto done;
  }
  fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  /* Our end of its stdin only (pipe2 made two open file descriptions): the caller writes the
   * request at once without ever blocking, whatever the pipe's capacity, and closes it. */
  fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
done:
  if (fa_ok) posix_spawn_file_actions_destroy(&fa);
  if (attr_ok) posix_spawnattr_destroy(&attr);
  free_strv(args);
  free_strv(envp);
  /* The child's ends are closed here in every case; ours too on failure. */
  if (in[0] >= 0) close(in[0]);
  if (o[1] >= 0) close(o[1]);
  if (e[1] >= 0) close(e[1]);
  if (pid < 0) {
    if (in[1] >= 0) close(in[1]);
    if (o[0] >= 0) close(o[0]);
    if (e[0] >= 0) close(e[0]);
    return throw_errno(env, err ? err : EINVAL, failed);
  }
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_int32(env, pid, &v));
  CHECK(napi_set_named_property(env, out, "pid", v));
  CHECK(napi_create_int32(env, pidfd, &v));
  CHECK(napi_set_named_property(env, out, "pidfd", v));
  CHECK(napi_create_int32(env, in[1], &v));
  CHECK(napi_set_named_property(env, out, "stdin", v));
  CHECK(napi_create_int32(env, o[0], &v));
  CHECK(napi_set_named_property(env, out, "stdout", v));
  CHECK(napi_create_int32(env, e[0], &v));
  CHECK(napi_set_named_property(env, out, "stderr", v));
  return out;
}

/* waitPid(pid) -> null while it runs, else {code, signal} (one of them null), reaping it. Only for
 * children of spawnPiped: libuv reaps its own children by pid, never these. */
static napi_value js_wait_pid(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, v;
  int32_t pid;
  if (get_args(env, info, 1, argv) || get_i32(env, argv[0], &pid)) return NULL;
  if (pid <= 0) return throw_errno(env, EINVAL, "waitpid");
  int st, r;
  do r = waitpid(pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "waitpid");
  if (r == 0) return null_value(env);
  CHECK(napi_create_object(env, &out));
  if (WIFEXITED(st)) CHECK(napi_create_int32(env, WEXITSTATUS(st), &v));
  else v = null_value(env);
  CHECK(napi_set_named_property(env, out, "code", v));
  if (WIFSIGNALED(st)) CHECK(napi_create_int32(env, WTERMSIG(st), &v));
  else v = null_value(env);
  CHECK(napi_set_named_property(env, out, "signal", v));
  return out;
}

/* Environment teardown (process exit, worker exit): stop and close every remaining watch. */
static void cleanup_env(void *arg) {
  addon_state *st = arg;
  while (st->watches) {
    watch_t *w = st->watches;
    st->watches = w->next;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_watch_closed);
  }
}

static void free_state(napi_env env, void *data, void *hint) { free(data); }

static napi_value init(napi_env env, napi_value exports) {
  addon_state *st = calloc(1, sizeof *st);
  if (!st) {
    napi_throw_error(env, NULL, "sriov_native: out of memory");
    return NULL;
  }
  CHECK(napi_set_instance_data(env, st, free_state, NULL));
  CHECK(napi_add_env_cleanup_hook(env, cleanup_env, st));
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"setns", js_setns},           {"flock", js_flock},           {"close", js_close},
      {"nlOpen", js_nl_open},        {"nlSend", js_nl_send},        {"nlSendAsync", js_nl_send_async},
      {"nlRecv", js_nl_recv},
      {"nlWatch", js_nl_watch},      {"nlUnwatch", js_nl_unwatch},  {"packetOpen", js_packet_open},
      {"packetSend", js_packet_send}, {"packetRecv", js_packet_recv}, {"peerCred", js_peer_cred},
      {"spawnPiped", js_spawn_piped}, {"waitPid", js_wait_pid},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    CHECK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f));
    CHECK(napi_set_named_property(env, exports, fns[i].name, f));
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
