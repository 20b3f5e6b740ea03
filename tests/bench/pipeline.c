/*
 * pipeline: what throughput each way of arranging keyd's processes can
 * reach on this machine, with real token signatures and nothing else of
 * keyd in it. It answers one question of issue 13's budget: can any design
 * that keeps the PKCS#11 module out of the socket-facing process keep
 * 0.90x of a daemon that signs in its own threads?
 *
 *   pipeline -M MODULE -t TOKEN -P PIN_FILE -l KEY_LABEL
 *            [-m inproc|sync|sync1|pipe|pipe2] [-c CLIENTS] [-d SECONDS] [-k]
 *            [-s SPIN_US] [-w WORK_US]
 *
 * Clients are threads of this process, each on its own Unix stream
 * connection, each sending a 32-byte digest and waiting for its ECDSA
 * signature, as keyd-pkcs11.so's C_Sign does. What answers them:
 *
 * inproc: one process, a thread per connection, each with its own
 *    session, signing where it reads (keyd before the token process).
 * sync:   a socket-facing process with a thread per connection, which
 *    sends each request to a token process on its own channel and sleeps
 *    until the answer, and a token process with a thread (and session) per
 *    channel (keyd-serve and keyd-token today).
 * sync1:  sync with one token thread that has every channel in one epoll
 *    set (the token half of the pipeline without the socket-facing half).
 * pipe:   a socket-facing process with one thread in an epoll loop that
 *    never waits for the token: it forwards each request, tagged, on one
 *    SOCK_SEQPACKET channel and relays answers as they come; a token
 *    process with one thread that takes the next queued request before it
 *    sleeps (the pipelined design).
 * pipe2:  pipe with two token threads reading the same channel, each with
 *    its own session.
 *
 * -k signs with a session copy of the key, as keyd does by default.
 * -s: the waiting sides of sync, pipe and pipe2 (socket-facing and token)
 * poll for up to SPIN_US microseconds before they sleep.
 * -w: the socket-facing side burns WORK_US microseconds of CPU per request
 * (in inproc, the thread that signs), a stand-in for keyd's own work.
 *
 * The token processes are forked and call C_Initialize themselves; the
 * socket-facing process never loads the module. Prints one markdown row:
 * mode, clients, signatures per second, and the CPU per signature of the
 * clients and of the answering processes (user + system).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#include <p11-kit/pkcs11.h>

#define MAX_CLIENTS 16
#define DIGEST_LEN 32
#define SIG_MAX 72

struct req {
	uint32_t tag;
	uint8_t digest[DIGEST_LEN];
};

struct rep {
	uint32_t tag;
	uint32_t rv;
	uint32_t sig_len;
	uint8_t sig[SIG_MAX];
};

static const char *module_path, *token_label, *pin_file, *key_label;
static CK_FUNCTION_LIST_PTR p11;
static CK_SLOT_ID slot;
static CK_OBJECT_HANDLE key;
static char pin[128];
static int copy_key;
static long spin_us;
static long work_us;
static atomic_int stop_now;

static void
die(const char *what)
{
	fprintf(stderr, "pipeline: %s\n", what);
	_exit(1);
}

static void
die_rv(const char *what, CK_RV rv)
{
	fprintf(stderr, "pipeline: %s: CKR 0x%lx\n", what, (unsigned long)rv);
	_exit(1);
}

/* -w: the socket-facing side's own work per request (parsing, policy,
 * the audit line), burnt in CPU where that side runs. */
static void
burn(void)
{
	burn_us(work_us);
}

/* -s: polls fd without sleeping for up to spin_us before a caller's
 * blocking wait, so that a vCPU does not go idle between two requests
 * that come close together. Returns 1 when fd became readable. */
static int
spin_readable(int fd)
{
	double until;
	char c;

	if (spin_us <= 0)
		return 0;
	until = now_s() + (double)spin_us / 1e6;
	do {
		ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

		/* Data, EOF or an error: the blocking wait returns at once. */
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			return 1;
	} while (now_s() < until);
	return 0;
}

/* In a token process (or inproc's one process): the module, the token's
 * slot, a login and the key. */
static void
token_open(void)
{
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
	CK_C_INITIALIZE_ARGS args;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i, found = 0;
	CK_SESSION_HANDLE s;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[2];
	CK_TOKEN_INFO ti;
	CK_RV rv;
	void *h;
	size_t ll = strlen(token_label);

	if ((h = dlopen(module_path, RTLD_NOW | RTLD_LOCAL)) == NULL)
		die(dlerror());
	*(void **)&get_list = dlsym(h, "C_GetFunctionList");
	if (get_list == NULL || get_list(&p11) != CKR_OK)
		die("no C_GetFunctionList");
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	if ((rv = p11->C_Initialize(&args)) != CKR_OK)
		die_rv("C_Initialize", rv);
	if ((rv = p11->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
		die_rv("C_GetSlotList", rv);
	for (i = 0; i < n && !found; i++) {
		if (p11->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (ll <= sizeof(ti.label) &&
		    memcmp(ti.label, token_label, ll) == 0 &&
		    (ll == sizeof(ti.label) || ti.label[ll] == ' ')) {
			slot = slots[i];
			found = 1;
		}
	}
	if (!found)
		die("no token with that label");
	if ((rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &s)) != CKR_OK)
		die_rv("C_OpenSession", rv);
	rv = p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	explicit_bzero(pin, sizeof(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		die_rv("C_Login", rv);
	tmpl[0].type = CKA_CLASS;
	tmpl[0].pValue = &cls;
	tmpl[0].ulValueLen = sizeof(cls);
	tmpl[1].type = CKA_LABEL;
	tmpl[1].pValue = (void *)key_label;
	tmpl[1].ulValueLen = strlen(key_label);
	if ((rv = p11->C_FindObjectsInit(s, tmpl, 2)) != CKR_OK)
		die_rv("C_FindObjectsInit", rv);
	n = 0;
	if ((rv = p11->C_FindObjects(s, &key, 1, &n)) != CKR_OK || n != 1)
		die("no private key with that label");
	(void)p11->C_FindObjectsFinal(s);
	if (copy_key) {
		/* A session copy, as keyd signs with (key_copies = yes):
		 * SoftHSM2 then does not read the token object again. */
		CK_BBOOL no = CK_FALSE;
		CK_ATTRIBUTE ct = { CKA_TOKEN, &no, sizeof(no) };
		CK_OBJECT_HANDLE copy;

		if ((rv = p11->C_CopyObject(s, key, &ct, 1, &copy)) != CKR_OK)
			die_rv("C_CopyObject", rv);
		key = copy;
	}
	/* s stays open: the login, and the copy, last while it does. */
}

static CK_SESSION_HANDLE
session_new(void)
{
	CK_SESSION_HANDLE s;
	CK_RV rv;

	if ((rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &s)) != CKR_OK)
		die_rv("C_OpenSession", rv);
	return s;
}

static void
sign(CK_SESSION_HANDLE s, const struct req *q, struct rep *r)
{
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_ULONG len = SIG_MAX;
	CK_RV rv;

	r->tag = q->tag;
	rv = p11->C_SignInit(s, &mech, key);
	if (rv == CKR_OK)
		rv = p11->C_Sign(s, (CK_BYTE_PTR)q->digest, DIGEST_LEN, r->sig,
		    &len);
	r->rv = (uint32_t)rv;
	r->sig_len = rv == CKR_OK ? (uint32_t)len : 0;
}

/* inproc: a thread per connection that signs what it reads; also sync's
 * token thread (arg's low bit clear: no socket-facing work here). */
static void *
inproc_thread(void *arg)
{
	int fd = (int)((long)arg >> 1);
	int facing = (int)((long)arg & 1);
	CK_SESSION_HANDLE s = session_new();
	struct req q;
	struct rep r;

	while (xfer(fd, &q, sizeof(q), 0) == 0) {
		if (facing)
			burn();
		sign(s, &q, &r);
		if (xfer(fd, &r, sizeof(r), 1) != 0)
			break;
	}
	return NULL;
}

/* sync's socket-facing thread: a client's request to its own channel,
 * asleep until the answer, the answer back. */
struct relay {
	int client;
	int chan;
};

static void *
sync_relay(void *arg)
{
	struct relay *rl = arg;
	struct req q;
	struct rep r;

	while (xfer(rl->client, &q, sizeof(q), 0) == 0) {
		burn();
		if (xfer(rl->chan, &q, sizeof(q), 1) != 0)
			break;
		(void)spin_readable(rl->chan);
		if (xfer(rl->chan, &r, sizeof(r), 0) != 0 ||
		    xfer(rl->client, &r, sizeof(r), 1) != 0)
			break;
	}
	close(rl->chan);
	return NULL;
}

/* A token thread for pipe and pipe2: whole messages off the one
 * SOCK_SEQPACKET channel, the next one taken before it sleeps (recv
 * returns at once while one is queued). */
static void *
token_seq_thread(void *arg)
{
	int fd = (int)(long)arg;
	CK_SESSION_HANDLE s = session_new();
	struct req q;
	struct rep r;
	ssize_t n;

	for (;;) {
		(void)spin_readable(fd);
		n = recv(fd, &q, sizeof(q), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(q))
			break;
		sign(s, &q, &r);
		if (send(fd, &r, sizeof(r), MSG_NOSIGNAL) != (ssize_t)sizeof(r))
			break;
	}
	return NULL;
}

/* sync1's token process: one thread with every channel in one epoll set,
 * each ready request signed before it sleeps again. */
static void
token_epoll_loop(int *chans, int n)
{
	struct epoll_event ev, evs[MAX_CLIENTS];
	CK_SESSION_HANDLE s = session_new();
	int ep, i, k, open_chans = n;
	struct req q;
	struct rep r;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	for (i = 0; i < n; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, chans[i], &ev) != 0)
			die("epoll_ctl");
	}
	while (open_chans > 0) {
		k = epoll_wait(ep, evs, MAX_CLIENTS, -1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die("epoll_wait");
		for (i = 0; i < k; i++) {
			int fd = chans[evs[i].data.u32];

			if (xfer(fd, &q, sizeof(q), 0) != 0) {
				(void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				open_chans--;
				continue;
			}
			sign(s, &q, &r);
			if (xfer(fd, &r, sizeof(r), 1) != 0)
				die("a channel");
		}
	}
	close(ep);
}

/* pipe's socket-facing process: one thread, one epoll set with every
 * client and the token channel. */
static void
pipe_loop(const int *clients, int nclients, int chan)
{
	struct epoll_event ev, evs[MAX_CLIENTS + 1];
	int ep, i, n, open_clients = nclients;
	struct req q;
	struct rep r;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	for (i = 0; i < nclients; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, clients[i], &ev) != 0)
			die("epoll_ctl");
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = MAX_CLIENTS;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, chan, &ev) != 0)
		die("epoll_ctl");
	while (open_clients > 0) {
		n = 0;
		if (spin_us > 0) {
			double until = now_s() + (double)spin_us / 1e6;

			while ((n = epoll_wait(ep, evs, MAX_CLIENTS + 1,
			    0)) == 0 && now_s() < until)
				;
		}
		if (n == 0)
			n = epoll_wait(ep, evs, MAX_CLIENTS + 1, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			uint32_t who = evs[i].data.u32;

			if (who == MAX_CLIENTS) {
				/* Every answer that is there, then back. */
				while (recv(chan, &r, sizeof(r),
				    MSG_DONTWAIT) == (ssize_t)sizeof(r))
					if (r.tag < (uint32_t)nclients)
						(void)xfer(clients[r.tag], &r,
						    sizeof(r), 1);
				continue;
			}
			if (xfer(clients[who], &q, sizeof(q), 0) != 0) {
				(void)epoll_ctl(ep, EPOLL_CTL_DEL,
				    clients[who], NULL);
				open_clients--;
				continue;
			}
			q.tag = who;
			burn();
			if (send(chan, &q, sizeof(q), MSG_NOSIGNAL) !=
			    (ssize_t)sizeof(q))
				die("the token channel");
		}
	}
	close(chan);
	close(ep);
}

struct client {
	int fd;
	long done;
	long failed;
};

static void *
client_thread(void *arg)
{
	struct client *c = arg;
	struct req q;
	struct rep r;
	unsigned i = 0;

	while (!atomic_load(&stop_now)) {
		memset(q.digest, (int)(i++ & 0xff), sizeof(q.digest));
		q.tag = 0;
		if (xfer(c->fd, &q, sizeof(q), 1) != 0 ||
		    xfer(c->fd, &r, sizeof(r), 0) != 0)
			die("a client lost its connection");
		if (r.rv != CKR_OK || r.sig_len != 64)
			c->failed++;
		else
			c->done++;
	}
	shutdown(c->fd, SHUT_WR);
	return NULL;
}

static pid_t
spawn(void (*body)(void *), void *arg)
{
	pid_t p = fork();

	if (p < 0)
		die("fork");
	if (p == 0) {
		body(arg);
		_exit(0);
	}
	return p;
}

struct layout {
	const char *mode;
	int nclients;
	int srv[MAX_CLIENTS];     /* the answering ends of the connections */
	int chan[MAX_CLIENTS][2]; /* sync: socket-facing, token */
	int seq[2];               /* pipe: socket-facing, token */
};

static void
run_inproc(void *arg)
{
	struct layout *l = arg;
	pthread_t th[MAX_CLIENTS];
	int i;

	token_open();
	for (i = 0; i < l->nclients; i++)
		pthread_create(&th[i], NULL, inproc_thread,
		    (void *)(((long)l->srv[i] << 1) | 1));
	for (i = 0; i < l->nclients; i++)
		pthread_join(th[i], NULL);
}

static void
run_sync_token(void *arg)
{
	struct layout *l = arg;
	pthread_t th[MAX_CLIENTS];
	int i;

	for (i = 0; i < l->nclients; i++) {
		close(l->srv[i]);
		close(l->chan[i][0]);
	}
	token_open();
	if (strcmp(l->mode, "sync1") == 0) {
		int chans[MAX_CLIENTS];

		for (i = 0; i < l->nclients; i++)
			chans[i] = l->chan[i][1];
		token_epoll_loop(chans, l->nclients);
		return;
	}
	for (i = 0; i < l->nclients; i++)
		pthread_create(&th[i], NULL, inproc_thread,
		    (void *)((long)l->chan[i][1] << 1));
	for (i = 0; i < l->nclients; i++)
		pthread_join(th[i], NULL);
}

static void
run_sync_serve(void *arg)
{
	struct layout *l = arg;
	pthread_t th[MAX_CLIENTS];
	struct relay rl[MAX_CLIENTS];
	int i;

	for (i = 0; i < l->nclients; i++) {
		close(l->chan[i][1]);
		rl[i].client = l->srv[i];
		rl[i].chan = l->chan[i][0];
		pthread_create(&th[i], NULL, sync_relay, &rl[i]);
	}
	for (i = 0; i < l->nclients; i++)
		pthread_join(th[i], NULL);
}

static void
run_pipe_token(void *arg)
{
	struct layout *l = arg;
	pthread_t th[2];
	int i, n = strcmp(l->mode, "pipe2") == 0 ? 2 : 1;

	for (i = 0; i < l->nclients; i++)
		close(l->srv[i]);
	close(l->seq[0]);
	token_open();
	for (i = 0; i < n; i++)
		pthread_create(&th[i], NULL, token_seq_thread,
		    (void *)(long)l->seq[1]);
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static void
run_pipe_serve(void *arg)
{
	struct layout *l = arg;

	close(l->seq[1]);
	pipe_loop(l->srv, l->nclients, l->seq[0]);
}

static void
read_pin(void)
{
	FILE *f = fopen(pin_file, "r");
	size_t n;

	if (f == NULL || fgets(pin, sizeof(pin), f) == NULL)
		die("cannot read the PIN file");
	fclose(f);
	n = strcspn(pin, "\r\n");
	pin[n] = '\0';
}

int
main(int argc, char **argv)
{
	struct layout l;
	struct client cl[MAX_CLIENTS];
	pthread_t th[MAX_CLIENTS];
	pid_t kids[2];
	int nkids = 0, sv[2], i, o;
	double secs = 4, t0, t1, c0, c1, k1;
	long done = 0, failed = 0;

	memset(&l, 0, sizeof(l));
	l.mode = "inproc";
	l.nclients = 2;
	while ((o = getopt(argc, argv, "M:t:P:l:m:c:d:ks:w:h")) != -1) {
		switch (o) {
		case 'M': module_path = optarg; break;
		case 't': token_label = optarg; break;
		case 'P': pin_file = optarg; break;
		case 'l': key_label = optarg; break;
		case 'm': l.mode = optarg; break;
		case 'c': l.nclients = atoi(optarg); break;
		case 'd': secs = atof(optarg); break;
		case 'k': copy_key = 1; break;
		case 's': spin_us = atol(optarg); break;
		case 'w': work_us = atol(optarg); break;
		default:
			fprintf(stderr, "usage: pipeline -M MODULE -t TOKEN "
			    "-P PIN_FILE -l KEY_LABEL [-m inproc|sync|sync1|"
			    "pipe|pipe2] [-c CLIENTS] [-d SECONDS] [-k] [-s SPIN_US] [-w WORK_US]\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (module_path == NULL || token_label == NULL || pin_file == NULL ||
	    key_label == NULL) {
		fprintf(stderr, "pipeline: -M, -t, -P and -l are needed\n");
		return 2;
	}
	if ((strcmp(l.mode, "inproc") != 0 && strcmp(l.mode, "sync") != 0 &&
	    strcmp(l.mode, "sync1") != 0 &&
	    strcmp(l.mode, "pipe") != 0 && strcmp(l.mode, "pipe2") != 0) ||
	    l.nclients < 1 || l.nclients > MAX_CLIENTS || secs <= 0) {
		fprintf(stderr, "pipeline: -m is inproc, sync, sync1, pipe or "
		    "pipe2; "
		    "-c 1..%d; -d positive\n", MAX_CLIENTS);
		return 2;
	}
	read_pin();
	for (i = 0; i < l.nclients; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			die("socketpair");
		cl[i].fd = sv[0];
		cl[i].done = cl[i].failed = 0;
		l.srv[i] = sv[1];
		if (strncmp(l.mode, "sync", 4) == 0 && socketpair(AF_UNIX,
		    SOCK_STREAM | SOCK_CLOEXEC, 0, l.chan[i]) != 0)
			die("socketpair");
	}
	if (strncmp(l.mode, "pipe", 4) == 0 && socketpair(AF_UNIX,
	    SOCK_SEQPACKET | SOCK_CLOEXEC, 0, l.seq) != 0)
		die("socketpair");

	if (strcmp(l.mode, "inproc") == 0) {
		kids[nkids++] = spawn(run_inproc, &l);
	} else if (strncmp(l.mode, "sync", 4) == 0) {
		kids[nkids++] = spawn(run_sync_token, &l);
		kids[nkids++] = spawn(run_sync_serve, &l);
		for (i = 0; i < l.nclients; i++) {
			close(l.chan[i][0]);
			close(l.chan[i][1]);
		}
	} else {
		kids[nkids++] = spawn(run_pipe_token, &l);
		kids[nkids++] = spawn(run_pipe_serve, &l);
		close(l.seq[0]);
		close(l.seq[1]);
	}
	for (i = 0; i < l.nclients; i++)
		close(l.srv[i]);
	explicit_bzero(pin, sizeof(pin));

	/* A first signature from each client, outside the measurement:
	 * the token processes log in first. */
	for (i = 0; i < l.nclients; i++) {
		struct req q;
		struct rep r;

		memset(&q, 0, sizeof(q));
		if (xfer(cl[i].fd, &q, sizeof(q), 1) != 0 ||
		    xfer(cl[i].fd, &r, sizeof(r), 0) != 0 || r.rv != CKR_OK)
			die("the first signature failed");
	}
	c0 = cpu_s(RUSAGE_SELF);
	t0 = now_s();
	for (i = 0; i < l.nclients; i++)
		pthread_create(&th[i], NULL, client_thread, &cl[i]);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&stop_now, 1);
	for (i = 0; i < l.nclients; i++) {
		pthread_join(th[i], NULL);
		done += cl[i].done;
		failed += cl[i].failed;
	}
	t1 = now_s();
	c1 = cpu_s(RUSAGE_SELF);
	for (i = 0; i < l.nclients; i++)
		close(cl[i].fd);
	for (i = 0; i < nkids; i++)
		if (waitpid(kids[i], NULL, 0) != kids[i])
			die("waitpid");
	/* The answering processes' CPU includes their start (C_Initialize,
	 * login), a few ms against seconds of signing. */
	k1 = cpu_s(RUSAGE_CHILDREN);
	if (failed > 0 || done == 0) {
		fprintf(stderr, "pipeline: %ld signatures failed\n", failed);
		return 1;
	}
	printf("| %s", l.mode);
	if (spin_us > 0)
		printf(" -s %ld", spin_us);
	if (work_us > 0)
		printf(" -w %ld", work_us);
	printf(" | %d | %.0f | %.1f | %.1f |\n", l.nclients,
	    (double)done / (t1 - t0), (c1 - c0) * 1e6 / (double)done,
	    k1 * 1e6 / (double)done);
	return 0;
}
