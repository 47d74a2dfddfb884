/*
 * sriov-underlay CNI shim: what kubelet's runtime executes as /opt/cni/bin/sriov-underlay.
 *
 * It forwards one CNI call (the CNI_* / SRIOV_UNDERLAY_* environment and stdin) to the CNI server of
 * the node daemon over a unix socket and relays the server's stdout and exit code byte for byte.
 * When the server cannot take the call it execs the standalone CNI, `sriov-underlay-cni` in the
 * shim's own directory, with the same environment (plus SRIOV_UNDERLAY_SERVED_BY) and stdin.
 * The wire protocol is docs/cni-server-protocol.md; this file holds no other logic.
 *
 * Memory: no malloc. The three bounded buffers live in .bss and only the pages a call touches
 * become resident; the fallback's environment array is one mmap sized by what execve gave us.
 * Built static-pie (scripts/build.mjs): no shared library, no glibc floor beyond the kernel's.
 *
 * The bounds (figures measured by bench/cni-shim.bench.ts; reasoning in the protocol document):
 *
 *   GREETING_MS = 10000. The greeting needs only the server's event loop to run its accept callback,
 *   and under load that loop is busy. bench/cni-shim.bench.ts, 2026-11-30, on this 2-core machine
 *   while other work kept the load average at 17-29: a Node peer doing each call's work on its main
 *   thread (0, 10 or 30 ms of synchronous work plus a real exec of Debian's `static` IPAM plugin), 32
 *   shims calling it in a loop, a C probe timing connect -> whole greeting every 2 ms (1,000
 *   probes): p50 0.4-0.7 ms, but p99 2.6-2.9 s, p99.9 2.9-3.5 s, max 3.5-3.9 s; with the 2 s bound
 *   first chosen, 28-48% of those shims fell back. A fallback starts a 50 MB Node CNI, which on an
 *   overloaded node (the 50 pods of a node boot) adds load exactly when the warm server is needed,
 *   so the bound sits well above the worst greeting measured: 10 s, about 3x p99.9. It is paid only when
 *   the server accepts but never greets (a hung or stopped process: a dead one refuses at once, a
 *   missing socket is ENOENT), once per call until its liveness probe restarts it; against a pod
 *   start that already waits on sandbox, image and probes, and far cheaper than a wrong answer.
 *
 *   REPLY_MS = 100000. The server answers every command within its own deadline of 90 s after it
 *   read the request (code 11 if the command is still running then): the longest legitimate
 *   command is an ADD whose delegated IPAM plugin takes its full 60 s bound after waiting for the
 *   VF lock. The shim waits 10 s more so that the server's own deadline answer, not the shim's
 *   timeout, is what the runtime sees, and stays under kubelet's 2 min runtime request timeout.
 *
 * Tests compile this file with smaller -DGREETING_MS / -DREPLY_MS; the shipped build uses these.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef GREETING_MS
#define GREETING_MS 10000
#endif
#ifndef REPLY_MS
#define REPLY_MS 100000
#endif

#define PROTO "SRIOV-UNDERLAY-CNI/"
#define VERSION "1"
#define GREETING PROTO VERSION "\n"
#define DEFAULT_SOCKET "/run/sriov-underlay-cni/cni.sock"
#define SOCKET_ENV "SRIOV_UNDERLAY_CNI_SOCKET"
#define SERVED_BY "SRIOV_UNDERLAY_SERVED_BY="
#define FALLBACK_NAME "sriov-underlay-cni"

#define STDIN_MAX (1u << 20)
#define STDOUT_MAX (1u << 20)
#define ENV_MAX_BYTES (64u << 10)
#define ENV_MAX_ENTRIES 256u
#define REPLY_HEADER_MAX 64u

/* CNI error codes (spec) the shim itself answers with. */
#define CODE_INVALID_ENV 4
#define CODE_IO 5
#define CODE_DECODE 6
#define CODE_TRY_AGAIN 11

extern char **environ;

static char stdin_buf[STDIN_MAX + 1];
static size_t stdin_len;
static char env_buf[ENV_MAX_BYTES];
static char out_buf[STDOUT_MAX];
static struct sigaction saved_sigpipe;

/* ---------------------------------------------------------------- errors on stdout */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) { /* an inherited O_NONBLOCK pipe */
				struct pollfd pfd = { .fd = fd, .events = POLLOUT };
				if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
					return -1;
				continue;
			}
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Appends s as JSON string content: quotes, backslashes and every byte outside printable ASCII
 * escaped, so the error stays valid JSON whatever a path or errno text holds. */
static void json_append(char *dst, size_t cap, size_t *len, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7];
		size_t k = 0;
		if (c == '"' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			esc[k++] = '\\';
			esc[k++] = 'u';
			esc[k++] = '0';
			esc[k++] = '0';
			esc[k++] = hex[c >> 4];
			esc[k++] = hex[c & 15];
		} else {
			esc[k++] = (char)c;
		}
		if (*len + k + 1 > cap)
			return;
		memcpy(dst + *len, esc, k);
		*len += k;
	}
	dst[*len] = '\0';
}

/* The netconf's cniVersion for the shim's own errors, if it is cheap to find: the first
 * "cniVersion" key followed by a short string of version characters. Else 1.1.0. */
static void cni_version(char *out, size_t cap)
{
	static const char key[] = "\"cniVersion\"";
	const char *end = stdin_buf + stdin_len;
	const char *p = memmem(stdin_buf, stdin_len, key, sizeof key - 1);
	snprintf(out, cap, "1.1.0");
	if (!p)
		return;
	p += sizeof key - 1;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p >= end || *p++ != ':')
		return;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p >= end || *p++ != '"')
		return;
	size_t n = 0;
	while (p + n < end && n < 16 && ((p[n] >= '0' && p[n] <= '9') || p[n] == '.'))
		n++;
	if (n == 0 || n >= cap || p + n >= end || p[n] != '"')
		return;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* Prints a CNI error JSON on stdout and exits 1. msg and details are the shim's own text plus
 * paths and strerror: escaped, and cut to fit rather than overflow. */
static void __attribute__((noreturn)) cni_error(int code, const char *msg, const char *details)
{
	static char json[8192];
	char version[20];
	size_t len = 0;
	cni_version(version, sizeof version);
	len = (size_t)snprintf(json, sizeof json, "{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"", version, code);
	json_append(json, sizeof json - 64, &len, msg);
	if (details && *details) {
		len += (size_t)snprintf(json + len, sizeof json - len, "\",\"details\":\"");
		json_append(json, sizeof json - 8, &len, details);
	}
	len += (size_t)snprintf(json + len, sizeof json - len, "\"}\n");
	(void)write_all(1, json, len);
	_exit(1);
}

/* ---------------------------------------------------------------- time and sockets */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = { .fd = fd, .events = events };
		int r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r > 0)
			return 1;
	}
}

enum io { IO_OK, IO_EOF, IO_TIMEOUT, IO_ERROR };

/* Reads at most n bytes (at least one) before the deadline. */
static enum io read_some(int fd, char *p, size_t n, int64_t deadline, size_t *got)
{
	for (;;) {
		ssize_t r = read(fd, p, n);
		if (r > 0) {
			*got = (size_t)r;
			return IO_OK;
		}
		if (r == 0)
			return IO_EOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return IO_ERROR;
		int w = wait_fd(fd, POLLIN, deadline);
		if (w == 0)
			return IO_TIMEOUT;
		if (w < 0)
			return IO_ERROR;
	}
}

static enum io send_all(int fd, const char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return IO_ERROR;
			int r = wait_fd(fd, POLLOUT, deadline);
			if (r == 0)
				return IO_TIMEOUT;
			if (r < 0)
				return IO_ERROR;
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return IO_OK;
}

/* ---------------------------------------------------------------- fallback */

/* fd 0 for the standalone CNI: the stdin bytes already read, in a memfd (or a pipe big enough to
 * hold them where memfd_create is refused). Returns NULL or what failed. */
static const char *replay_stdin(void)
{
	int fd = memfd_create("cni-stdin", MFD_CLOEXEC);
	if (fd >= 0) {
		if (write_all(fd, stdin_buf, stdin_len) < 0 || lseek(fd, 0, SEEK_SET) != 0) {
			close(fd);
			return "writing stdin to a memfd";
		}
	} else {
		int p[2];
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			return "pipe2 for stdin";
		if (stdin_len > 65536 && fcntl(p[1], F_SETPIPE_SZ, (int)stdin_len) < 0) {
			close(p[0]);
			close(p[1]);
			return "growing the stdin pipe";
		}
		/* Nonblocking: a pipe too small fails here instead of blocking forever. */
		if (write_all(p[1], stdin_buf, stdin_len) < 0) {
			close(p[0]);
			close(p[1]);
			return "writing stdin to a pipe";
		}
		close(p[1]);
		int fl = fcntl(p[0], F_GETFL);
		if (fl < 0 || fcntl(p[0], F_SETFL, fl & ~O_NONBLOCK) < 0) {
			close(p[0]);
			return "fcntl on the stdin pipe";
		}
		fd = p[0];
	}
	if (fd != 0) {
		if (dup2(fd, 0) < 0) { /* dup2 clears FD_CLOEXEC on fd 0 */
			close(fd);
			return "dup2 of the stdin copy";
		}
		close(fd);
	} else if (fcntl(0, F_SETFD, 0) < 0) {
		return "fcntl on the stdin copy";
	}
	return NULL;
}

static void __attribute__((noreturn)) fallback(const char *reason, int sock)
{
	static char self[PATH_MAX];
	static char target[PATH_MAX];
	static char served_by[64];
	char details[PATH_MAX + 256];

	if (sock >= 0)
		close(sock);
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0 || (size_t)n >= sizeof self - 1) {
		snprintf(details, sizeof details, "readlink /proc/self/exe: %s (server path: %s)",
			 n < 0 ? strerror(errno) : "too long", reason);
		cni_error(CODE_TRY_AGAIN, "sriov-underlay: the CNI server could not take the call and the shim cannot find its own directory", details);
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash || (size_t)(slash - self) + 1 + sizeof FALLBACK_NAME > sizeof target)
		cni_error(CODE_TRY_AGAIN, "sriov-underlay: the shim's own path is not usable", self);
	memcpy(target, self, (size_t)(slash - self) + 1);
	memcpy(target + (slash - self) + 1, FALLBACK_NAME, sizeof FALLBACK_NAME);
	snprintf(served_by, sizeof served_by, SERVED_BY "fallback:%s", reason);

	/* The same environment, with SERVED_BY set (replaced if the caller had one). */
	size_t count = 0;
	while (environ[count])
		count++;
	size_t bytes = (count + 2) * sizeof(char *);
	char **envp = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (envp == MAP_FAILED) {
		snprintf(details, sizeof details, "mmap of %zu bytes: %s (server path: %s)", bytes, strerror(errno), reason);
		cni_error(CODE_TRY_AGAIN, "sriov-underlay: cannot build the standalone CNI's environment", details);
	}
	size_t k = 0;
	for (size_t i = 0; i < count; i++)
		if (strncmp(environ[i], SERVED_BY, sizeof SERVED_BY - 1) != 0)
			envp[k++] = environ[i];
	envp[k++] = served_by;
	envp[k] = NULL;

	const char *failed = replay_stdin();
	if (failed) {
		snprintf(details, sizeof details, "%s: %s (server path: %s)", failed, strerror(errno), reason);
		cni_error(CODE_TRY_AGAIN, "sriov-underlay: cannot hand stdin to the standalone CNI", details);
	}
	/* The standalone CNI gets the signal disposition the shim was started with. */
	sigaction(SIGPIPE, &saved_sigpipe, NULL);
	char *argv[] = { target, NULL };
	execve(target, argv, envp);
	int err = errno;
	signal(SIGPIPE, SIG_IGN);
	snprintf(details, sizeof details, "execve %s: %s (the CNI server could not take the call: %s)", target, strerror(err), reason);
	cni_error(CODE_TRY_AGAIN, "sriov-underlay: neither the CNI server nor the standalone CNI can run", details);
}

/* ---------------------------------------------------------------- the call */

/* CNI_ or SRIOV_UNDERLAY_ then [A-Z0-9_]* then '=': the only keys the server accepts, so an odd
 * variable elsewhere in the runtime's environment (which the CNI never reads) cannot fail a call. */
static int forwarded(const char *v)
{
	const char *p;
	if (strncmp(v, "CNI_", 4) == 0)
		p = v + 4;
	else if (strncmp(v, "SRIOV_UNDERLAY_", 15) == 0)
		p = v + 15;
	else
		return 0;
	while ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')
		p++;
	return *p == '='; /* else not a variable (execve lets anything through) or a foreign key */
}

static size_t collect_env(unsigned *entries)
{
	size_t len = 0;
	*entries = 0;
	for (char **e = environ; *e; e++) {
		const char *v = *e;
		if (!forwarded(v))
			continue;
		size_t n = strlen(v) + 1;
		if (++*entries > ENV_MAX_ENTRIES || n > ENV_MAX_BYTES - len) {
			char details[160];
			snprintf(details, sizeof details,
				 "the CNI_* and SRIOV_UNDERLAY_* variables must fit in %u bytes and %u entries", ENV_MAX_BYTES, ENV_MAX_ENTRIES);
			cni_error(CODE_INVALID_ENV, "sriov-underlay: the CNI environment is over the shim's bound", details);
		}
		memcpy(env_buf + len, v, n);
		len += n;
	}
	return len;
}

static void read_stdin(void)
{
	for (;;) {
		size_t room = sizeof stdin_buf - stdin_len;
		if (room == 0) {
			char details[96];
			snprintf(details, sizeof details, "stdin must be at most %u bytes", STDIN_MAX);
			cni_error(CODE_DECODE, "sriov-underlay: the netconf on stdin is over the shim's bound", details);
		}
		ssize_t r = read(0, stdin_buf + stdin_len, room);
		if (r > 0) {
			stdin_len += (size_t)r;
			continue;
		}
		if (r == 0)
			return;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			struct pollfd pfd = { .fd = 0, .events = POLLIN };
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				cni_error(CODE_IO, "sriov-underlay: cannot read stdin", strerror(errno));
			continue;
		}
		cni_error(CODE_IO, "sriov-underlay: cannot read stdin", strerror(errno));
	}
}

/* Parses "SRIOV-UNDERLAY-CNI/1 <exit> <bytes>" (no leading zeros, exit 0-255, bytes within the
 * bound). Returns 0 or -1. */
static int parse_reply_header(const char *h, size_t n, int *code, size_t *bytes)
{
	static const char prefix[] = PROTO VERSION " ";
	if (n < sizeof prefix - 1 || memcmp(h, prefix, sizeof prefix - 1) != 0)
		return -1;
	const char *p = h + sizeof prefix - 1, *end = h + n;
	unsigned long v[2];
	for (int i = 0; i < 2; i++) {
		const char *s = p;
		v[i] = 0;
		while (p < end && *p >= '0' && *p <= '9' && p - s < 8)
			v[i] = v[i] * 10 + (unsigned long)(*p++ - '0');
		if (p == s || (p - s > 1 && *s == '0'))
			return -1;
		if (i == 0 && (p >= end || *p++ != ' '))
			return -1;
	}
	if (p != end || v[0] > 255 || v[1] > STDOUT_MAX)
		return -1;
	*code = (int)v[0];
	*bytes = v[1];
	return 0;
}

/* A reply that did not arrive whole: ADD may have run in part, so the runtime is told to retry
 * (it DELs first); anything else is idempotent and goes to the standalone CNI. */
static void __attribute__((noreturn)) broken_reply(int is_add, int sock, const char *what)
{
	if (!is_add)
		fallback("broken-reply", sock);
	close(sock);
	cni_error(CODE_TRY_AGAIN, "sriov-underlay: the CNI server did not finish its answer to ADD; try again", what);
}

int main(void)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &saved_sigpipe);
	/* Closed standard fds would be reused by the socket and written to as "stdout". */
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDWR) != fd)
			_exit(1);

	read_stdin();
	unsigned entries;
	size_t env_len = collect_env(&entries);
	const char *command = getenv("CNI_COMMAND");
	int is_add = command && strcmp(command, "ADD") == 0;

	/* 1. Connect, without blocking. */
	const char *path = getenv(SOCKET_ENV);
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof addr.sun_path)
		fallback("connect", -1);
	memcpy(addr.sun_path, path, strlen(path) + 1);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sock < 0)
		fallback("connect", -1);
	int64_t greet_deadline = now_ms() + GREETING_MS;
	if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int err = errno;
		if (err == EINTR || err == EINPROGRESS) {
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (wait_fd(sock, POLLOUT, greet_deadline) != 1 ||
			    getsockopt(sock, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0)
				fallback("connect", sock);
		} else {
			fallback(err == ENOENT || err == ENOTDIR ? "no-socket"
				 : err == ECONNREFUSED	       ? "refused"
				 : err == EAGAIN	       ? "busy"
							       : "connect",
				 sock);
		}
	}

	/* 2. Greeting: compared as it arrives; the server sends nothing more before our request. */
	static const char greeting[] = GREETING;
	char got[sizeof greeting];
	size_t have = 0;
	while (have < sizeof greeting - 1) {
		size_t n;
		enum io r = read_some(sock, got + have, sizeof greeting - 1 - have, greet_deadline, &n);
		if (r != IO_OK)
			fallback("no-greeting", sock);
		for (size_t i = have; i < have + n; i++)
			if (got[i] != greeting[i])
				fallback(i >= sizeof PROTO - 1 ? "version" : "bad-greeting", sock);
		have += n;
	}

	/* 3. Request. Nothing runs before the server has all of it, so a failed send falls back. */
	int64_t reply_deadline = now_ms() + REPLY_MS;
	char header[64];
	int hl = snprintf(header, sizeof header, PROTO VERSION " %zu %zu\n", env_len, stdin_len);
	if (send_all(sock, header, (size_t)hl, reply_deadline) != IO_OK ||
	    send_all(sock, env_buf, env_len, reply_deadline) != IO_OK ||
	    send_all(sock, stdin_buf, stdin_len, reply_deadline) != IO_OK)
		fallback("send", sock);

	/* 4. Reply: header line, then exactly <bytes> of stdout. Not half-closed: a Node server
	 * (allowHalfOpen false) would end its side on our FIN. */
	char rh[REPLY_HEADER_MAX];
	size_t rl = 0, nl = 0, body = 0, want = 0;
	int code = 0;
	for (;;) {
		size_t n;
		enum io r = read_some(sock, rh + rl, sizeof rh - rl, reply_deadline, &n);
		if (r != IO_OK)
			broken_reply(is_add, sock, r == IO_TIMEOUT ? "no reply within the shim's bound" : "the connection ended before the reply header");
		char *eol = memchr(rh + rl, '\n', n);
		rl += n;
		if (eol) {
			nl = (size_t)(eol - rh);
			break;
		}
		if (rl == sizeof rh)
			broken_reply(is_add, sock, "the reply header is not SRIOV-UNDERLAY-CNI/1 <exit> <bytes>");
	}
	if (parse_reply_header(rh, nl, &code, &want) < 0)
		broken_reply(is_add, sock, "the reply header is not SRIOV-UNDERLAY-CNI/1 <exit> <bytes> within the bound");
	body = rl - nl - 1;
	if (body > want)
		body = want;
	memcpy(out_buf, rh + nl + 1, body);
	while (body < want) {
		size_t n;
		enum io r = read_some(sock, out_buf + body, want - body, reply_deadline, &n);
		if (r != IO_OK)
			broken_reply(is_add, sock, r == IO_TIMEOUT ? "no whole reply within the shim's bound" : "the connection ended inside the reply");
		body += n;
	}
	close(sock);
	if (write_all(1, out_buf, want) < 0)
		_exit(1);
	return code;
}
