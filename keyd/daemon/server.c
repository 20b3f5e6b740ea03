/* server.c: accept, identify, read frames, dispatch, write replies. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/fsuid.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "keyd_err.h"
#include "log.h"
#include "pathsafe.h"

#define SERVER_BACKLOG 128
#define SERVER_READ_CHUNK 16384
/* One event per epoll_wait: a worker never holds events it has not
 * started on, which would wait behind its request while the token is
 * slow (another worker takes them instead). */
#define SERVER_EVENTS 1
/* Replies a connection may have queued, in bytes, before keyd stops
 * reading its requests (the client is not reading its replies). */
#define SERVER_OUT_HIGH_WATER (256u * 1024u)
/* Descriptors kept free for what keyd must open while it serves: a
 * restarted token process's channels (up to 64, tokenwire.h), the audit
 * log after a rotation, the syslog socket. A full descriptor table would
 * fail every client, not only the new ones. A connection that would take
 * one of these is closed at once. */
#define SERVER_FD_RESERVE 96
/* Descriptors keyd holds besides connections and the reserve: the
 * listener, epoll, eventfd, signalfd, audit log, syslog, stdio. */
#define SERVER_FD_BASE 16
/* At most one warning this often about refused connections (a client
 * that opens connections in a loop must not flood the log). */
#define SERVER_WARN_INTERVAL_S 60
/* How long a stop waits for the workers beyond token_timeout, the longest
 * a worker waits on a token process. */
#define SERVER_STOP_WAIT_MS 3000

struct conn {
	int fd;
	/* The client it was admitted as, for good: a reload maps the peer's
	 * credentials again and closes the connection if they now name no
	 * client or another one. peer.client and peer.limiter belong to the
	 * dispatcher of generation gen. */
	char client_name[CONFIG_NAME_MAX + 1];
	uint64_t gen;
	struct dispatch_peer peer;
	struct kbuf in;
	struct kbuf out;
	unsigned queued;          /* replies queued since out was last empty */
	int closing;              /* close once out is flushed */
	int peer_eof;
	_Atomic long last_active; /* CLOCK_MONOTONIC seconds */
};

struct server {
	/* The settings a reload cannot change (reload.c), copied at bind:
	 * the configuration they came from goes at the first reload. */
	unsigned max_frame, max_inflight, idle_timeout_s, token_timeout_ms;
	unsigned workers;
	struct audit *audit;
	/* The dispatcher in force. gen_mu orders a reload's swap against
	 * accepts and closes (lock order: gen_mu, then table_mu). */
	pthread_mutex_t gen_mu;
	struct dispatch *cur;
	/* cur's generation, read without gen_mu between two frames. */
	_Atomic uint64_t cur_generation;
	int listen_fd;
	int bound;                /* listen_fd named the socket path */
	int epfd;
	int stop_fd;              /* eventfd: readable once stopping */
	char *path;
	pthread_t *threads;
	size_t n_threads;
	size_t abandoned;         /* workers a stop left behind */
	pthread_mutex_t table_mu; /* guards conns[] */
	struct conn **conns;      /* by fd */
	size_t n_slots;
	int started;
	size_t fd_cap;            /* descriptors at or above it: refused */
	/* Out of descriptors, the listener is taken out of the epoll set
	 * until a connection closes (or the next tick): it would stay
	 * readable, and the workers would spin on a failing accept. */
	pthread_mutex_t accept_mu; /* guards the three below */
	_Atomic int accept_paused;
	long warned_at;           /* CLOCK_MONOTONIC s of the last warning */
	unsigned long refused;    /* connections refused since then */
};

/* Tags that tell epoll events of the listener and stop fd apart from
 * connections. */
static char listen_tag, stop_tag;

/* The dispatcher in force, referenced: a request runs to its end under
 * the configuration it began in. */
static struct dispatch *
gen_get(struct server *s)
{
	struct dispatch *d;

	pthread_mutex_lock(&s->gen_mu);
	d = s->cur;
	atomic_fetch_add(&d->refs, 1);
	pthread_mutex_unlock(&s->gen_mu);
	return d;
}

/* Whether a reload has made another dispatcher than d the one in force. */
static int
gen_stale(struct server *s, const struct dispatch *d)
{
	int stale;

	pthread_mutex_lock(&s->gen_mu);
	stale = s->cur != d;
	pthread_mutex_unlock(&s->gen_mu);
	return stale;
}

static void
gen_put(struct dispatch *d)
{
	if (d != NULL && atomic_fetch_sub(&d->refs, 1) == 1 &&
	    d->release != NULL)
		d->release(d);
}

static long
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec;
}

/* Opens (creating it 0750 for uid and gid if missing) the directory of the
 * socket path, and checks that nobody but root and keyd's user can write
 * it. Returns a descriptor of it in *dfd, and its owner in *dir_uid. */
static int
socket_dir(const char *path, uid_t uid, gid_t gid, int *dfd, uid_t *dir_uid,
    char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int fd;

	*dfd = -1;
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = pathsafe_open(dir, O_PATH | O_DIRECTORY, 0);
	if (fd < 0 && errno == ENOENT) {
		fd = pathsafe_mkdir(dir, 0750, uid, gid);
		if (fd < 0 && errno == EEXIST)
			fd = pathsafe_open(dir, O_PATH | O_DIRECTORY, 0);
		if (fd < 0) {
			snprintf(err, errlen, "cannot create socket directory "
			    "%s: %s%s", dir, strerror(errno),
			    pathsafe_why(errno));
			return KEYD_ERR_CONFIG;
		}
	}
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "socket directory %s: %s%s", dir,
		    strerror(errno), errno == ENOTDIR ? " (not a directory)" :
		    pathsafe_why(errno));
		if (fd >= 0)
			close(fd);
		return KEYD_ERR_CONFIG;
	}
	/* Whoever may write the directory may remove keyd's socket and bind
	 * another in its place (a sticky directory such as /tmp protects the
	 * socket). */
	if ((st.st_uid != 0 && st.st_uid != uid) ||
	    ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))) {
		snprintf(err, errlen, "socket directory %s (owner uid %u, mode "
		    "%04o) must be owned by root or keyd's user and not "
		    "writable by group or others", dir, (unsigned)st.st_uid,
		    (unsigned)(st.st_mode & 07777));
		close(fd);
		return KEYD_ERR_CONFIG;
	}
	*dfd = fd;
	*dir_uid = st.st_uid;
	return KEYD_OK;
}

/* Binds fd to name in the directory dfd, creating the socket node with its
 * final owner, group and mode 0660 in one step: nothing is changed by name
 * afterwards, since keyd's user, who may own the directory, could rename a
 * link over the new node in between (and root's chown would follow it).
 * In a directory that user owns, the node is made with that user's
 * filesystem identity, so that whatever the name resolves to, root does
 * nothing there that the user could not do. In a directory only root may
 * write, it is bound as root through the directory's descriptor. Returns 0
 * or -1 with errno set. */
static int
bind_as(int fd, int dfd, const char *name, const char *path, uid_t dir_uid,
    uid_t uid, gid_t gid)
{
	struct sockaddr_un sa;
	int root = geteuid() == 0, user_dir = root && dir_uid == uid && uid != 0;
	int r, e, n;
	mode_t old;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s",
	    dfd, name);
	/* The descriptor's magic link cannot be used under another fsuid
	 * (/proc/self/fd is the process owner's), nor without /proc. */
	if (user_dir || n < 0 || (size_t)n >= sizeof(sa.sun_path) ||
	    access("/proc/self/fd", X_OK) != 0)
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (root) {
		(void)setfsgid(gid);
		if ((gid_t)setfsgid((gid_t)-1) != gid) {
			errno = EPERM;
			return -1;
		}
		if (user_dir) {
			(void)setfsuid(uid);
			if ((uid_t)setfsuid((uid_t)-1) != uid) {
				(void)setfsgid(0);
				errno = EPERM;
				return -1;
			}
		}
	}
	old = umask(0117);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	e = errno;
	umask(old);
	if (root) {
		(void)setfsuid(0);
		(void)setfsgid(0);
		if (setfsuid((uid_t)-1) != 0 || setfsgid((gid_t)-1) != 0)
			abort();    /* cannot happen: root may set either back */
	}
	/* Without root the group is set afterwards, as only root can create
	 * a node for another group; the user gains nothing by redirecting
	 * its own chown. */
	if (r == 0 && !root && gid != getegid() && chown(path, (uid_t)-1,
	    gid) != 0)
		return -1;
	errno = e;
	return r;
}

int
server_bind(const struct config *cfg, uid_t owner_uid, struct server **out,
    char *err, size_t errlen)
{
	struct server *s;
	struct sockaddr_un sa;
	struct stat st;
	struct rlimit rl;
	rlim_t want;
	gid_t gid = cfg->has_socket_gid ? cfg->socket_gid :
	    (cfg->user != NULL ? cfg->user_gid : getegid());
	const char *name;
	uid_t dir_uid = 0;
	int r = KEYD_ERR_IO, fd, dfd = -1;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return KEYD_ERR_NOMEM;
	s->max_frame = cfg->max_frame;
	s->max_inflight = cfg->max_inflight;
	s->idle_timeout_s = cfg->idle_timeout_s;
	s->token_timeout_ms = cfg->token_timeout_ms;
	s->workers = cfg->workers;
	s->listen_fd = s->epfd = s->stop_fd = -1;
	pthread_mutex_init(&s->gen_mu, NULL);
	pthread_mutex_init(&s->table_mu, NULL);
	pthread_mutex_init(&s->accept_mu, NULL);
	s->warned_at = -SERVER_WARN_INTERVAL_S;
	if ((s->path = strdup(cfg->socket)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto fail;
	}
	/* The soft file limit is raised (within the hard limit) to what
	 * max_connections needs: systemd's default soft limit is 1024. */
	want = (rlim_t)cfg->max_connections + SERVER_FD_RESERVE +
	    SERVER_FD_BASE;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want &&
	    rl.rlim_cur != RLIM_INFINITY) {
		rl.rlim_cur = rl.rlim_max != RLIM_INFINITY &&
		    rl.rlim_max < want ? rl.rlim_max : want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = 65536;
	s->n_slots = (size_t)rl.rlim_cur;
	s->fd_cap = s->n_slots > 4 * SERVER_FD_RESERVE ?
	    s->n_slots - SERVER_FD_RESERVE : s->n_slots * 3 / 4;
	if (rl.rlim_cur < want)
		log_warn("max_connections = %u, but the file limit of %zu "
		    "(hard limit too) leaves room for about %zu connections: "
		    "raise it (LimitNOFILE= under systemd)",
		    cfg->max_connections, s->n_slots,
		    s->fd_cap > SERVER_FD_BASE ? s->fd_cap - SERVER_FD_BASE :
		    0);
	if ((s->conns = calloc(s->n_slots, sizeof(*s->conns))) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto fail;
	}
	r = KEYD_ERR_CONFIG;
	if (strlen(cfg->socket) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long", cfg->socket);
		goto fail;
	}
	if ((r = socket_dir(cfg->socket, owner_uid, gid, &dfd, &dir_uid, err,
	    errlen)) != KEYD_OK)
		goto fail;
	r = KEYD_ERR_IO;
	name = strrchr(cfg->socket, '/');
	name = name != NULL ? name + 1 : cfg->socket;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cfg->socket);

	/* A socket file left by a keyd that died is replaced; one that
	 * answers belongs to a running keyd and is left alone. Looked at and
	 * removed through the directory's descriptor, never followed. */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket; "
			    "remove it or choose another socket path",
			    cfg->socket);
			goto fail;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa,
		    sizeof(sa)) == 0) {
			close(fd);
			snprintf(err, errlen, "another process is serving %s; "
			    "is keyd already running?", cfg->socket);
			goto fail;
		}
		if (fd >= 0)
			close(fd);
		if (unlinkat(dfd, name, 0) != 0) {
			snprintf(err, errlen, "cannot remove stale socket %s: "
			    "%s", cfg->socket, strerror(errno));
			goto fail;
		}
	}
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	if (bind_as(s->listen_fd, dfd, name, cfg->socket, dir_uid, owner_uid,
	    gid) != 0) {
		snprintf(err, errlen, "cannot bind %s: %s", cfg->socket,
		    strerror(errno));
		goto fail;
	}
	s->bound = 1;
	close(dfd);
	dfd = -1;
	if (listen(s->listen_fd, SERVER_BACKLOG) != 0) {
		snprintf(err, errlen, "listen on %s: %s", cfg->socket,
		    strerror(errno));
		goto fail;
	}
	*out = s;
	return KEYD_OK;
fail:
	if (dfd >= 0)
		close(dfd);
	server_free(s);
	return r;
}

/* Counts a connection refused for want of descriptors, and says so at
 * most once per SERVER_WARN_INTERVAL_S. */
static void
accept_refused(struct server *s, const char *why)
{
	long now = now_s();

	pthread_mutex_lock(&s->accept_mu);
	s->refused++;
	if (now - s->warned_at >= SERVER_WARN_INTERVAL_S) {
		log_warn("refusing connections: %s (%lu since the last "
		    "warning; raise keyd's file limit, LimitNOFILE= under "
		    "systemd, or lower max_connections)", why, s->refused);
		s->warned_at = now;
		s->refused = 0;
	}
	pthread_mutex_unlock(&s->accept_mu);
}

static void
accept_pause(struct server *s)
{
	pthread_mutex_lock(&s->accept_mu);
	if (!atomic_load(&s->accept_paused)) {
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
		atomic_store(&s->accept_paused, 1);
	}
	pthread_mutex_unlock(&s->accept_mu);
}

static void
accept_resume(struct server *s)
{
	struct epoll_event ev;

	if (!atomic_load(&s->accept_paused))
		return;
	pthread_mutex_lock(&s->accept_mu);
	if (atomic_load(&s->accept_paused)) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.ptr = &listen_tag;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) == 0 ||
		    errno == EEXIST)
			atomic_store(&s->accept_paused, 0);
	}
	pthread_mutex_unlock(&s->accept_mu);
}

static void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	kbuf_free(&c->in);
	kbuf_free(&c->out);
	free(c);
}

/* Whether c's peer is, under d's configuration, the client it was
 * admitted as; its index there in *client. */
static int
conn_maps(const struct dispatch *d, const struct conn *c, size_t *client)
{
	int ambiguous;
	long i = policy_match(d->cfg, &c->peer.cred, &ambiguous);

	if (i < 0 || strcmp(d->cfg->clients[i].name, c->client_name) != 0)
		return 0;
	*client = (size_t)i;
	return 1;
}

static void
conn_close(struct server *s, struct conn *c)
{
	struct dispatch *cur;
	size_t client;

	pthread_mutex_lock(&s->gen_mu);
	cur = s->cur;
	pthread_mutex_lock(&s->table_mu);
	if ((size_t)c->fd < s->n_slots)
		s->conns[c->fd] = NULL;
	pthread_mutex_unlock(&s->table_mu);
	/* Its connection is counted by the dispatcher in force: by its own
	 * limiter, or, if a reload came since its last request, by the one
	 * the reload's swap counted it in (server_swap). */
	if (c->gen == cur->generation) {
		if (c->peer.limiter != NULL)
			policy_limiter_disconnect(c->peer.limiter);
	} else if (conn_maps(cur, c, &client)) {
		policy_limiter_disconnect(&cur->limiters[client]);
	}
	pthread_mutex_unlock(&s->gen_mu);
	(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	atomic_fetch_sub(&cur->run->connections, 1);
	conn_free(c);
	accept_resume(s);
}

/* An audit record about a peer rather than a request. Refusals of
 * peers and connections are folded (audit.h), and so is anything else
 * when fold is set: a client over its rate. */
static void
audit_peer(struct server *s, const char *event, const char *client,
    const struct policy_peer *p, int result, const char *detail, int fold)
{
	struct audit_record ar;

	memset(&ar, 0, sizeof(ar));
	ar.event = event;
	ar.client = client;
	ar.has_peer = 1;
	ar.uid = p->uid;
	ar.gid = p->gid;
	ar.pid = p->pid;
	ar.result = result;
	ar.detail = detail;
	ar.aggregate = fold || result == KEYD_ERR_DENIED ||
	    result == KEYD_ERR_BUSY;
	(void)!audit_write(s->audit, &ar);
}

static void
accept_one(struct server *s, int fd)
{
	struct conn *c = NULL;
	struct dispatch *d;
	struct policy_peer peer;
	struct epoll_event ev;
	long client;
	int ambiguous;

	if (policy_peer_from_fd(fd, &peer) != KEYD_OK) {
		log_warn("cannot read a peer's credentials; closing it");
		close(fd);
		return;
	}
	/* Held until the connection is in the table: a reload's swap
	 * counts it in the new configuration's limiters or closes it. */
	pthread_mutex_lock(&s->gen_mu);
	d = s->cur;
	client = policy_match(d->cfg, &peer, &ambiguous);
	if (client < 0) {
		audit_peer(s, "denied-peer", NULL, &peer, KEYD_ERR_DENIED,
		    ambiguous ? "the peer's groups match more than one client"
		    : "no [client] matches the peer", 0);
		close(fd);
		goto out;
	}
	/* Counted first, then checked: two workers accepting at once cannot
	 * both take the last place. */
	if (atomic_fetch_add(&d->run->connections, 1) >=
	    d->cfg->max_connections) {
		atomic_fetch_sub(&d->run->connections, 1);
		audit_peer(s, "busy", d->cfg->clients[client].name, &peer,
		    KEYD_ERR_BUSY, "max_connections reached", 0);
		close(fd);
		goto out;
	}
	/* Each client's limit is its own max_connections or its share of
	 * the global one (config.c): one client cannot hold them all. */
	if (!policy_limiter_connect(&d->limiters[client])) {
		char why[64];

		atomic_fetch_sub(&d->run->connections, 1);
		snprintf(why, sizeof(why), "the client's max_connections "
		    "reached (%u)", d->cfg->clients[client].max_connections);
		audit_peer(s, "busy", d->cfg->clients[client].name, &peer,
		    KEYD_ERR_BUSY, why, 0);
		close(fd);
		goto out;
	}
	if ((size_t)fd >= s->fd_cap) {
		atomic_fetch_sub(&d->run->connections, 1);
		policy_limiter_disconnect(&d->limiters[client]);
		audit_peer(s, "busy", d->cfg->clients[client].name, &peer,
		    KEYD_ERR_BUSY, "keyd's file descriptor limit reached", 0);
		close(fd);
		accept_refused(s, "the file descriptor limit is nearly "
		    "reached");
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		atomic_fetch_sub(&d->run->connections, 1);
		policy_limiter_disconnect(&d->limiters[client]);
		close(fd);
		goto out;
	}
	c->fd = fd;
	snprintf(c->client_name, sizeof(c->client_name), "%s",
	    d->cfg->clients[client].name);
	c->gen = d->generation;
	c->peer.client = (size_t)client;
	c->peer.cred = peer;
	c->peer.limiter = &d->limiters[client];
	kbuf_init(&c->in, s->max_frame + FRAME_HDR_LEN, 0);
	/* A reply may be larger than the largest request. */
	kbuf_init(&c->out, SERVER_OUT_HIGH_WATER + FRAME_MAX_CEILING,
	    KBUF_SECRET);
	atomic_store(&c->last_active, now_s());
	pthread_mutex_lock(&s->table_mu);
	s->conns[fd] = c;
	pthread_mutex_unlock(&s->table_mu);
	pthread_mutex_unlock(&s->gen_mu);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
	ev.data.ptr = c;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		log_error("epoll_ctl: %s", strerror(errno));
		conn_close(s, c);
	}
	return;
out:
	pthread_mutex_unlock(&s->gen_mu);
}

static void
accept_all(struct server *s)
{
	int fd;

	for (;;) {
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				accept_refused(s, strerror(errno));
				accept_pause(s);
			}
			return;
		}
		accept_one(s, fd);
	}
}

/* Writes what it can. Returns -1 if the connection is broken. */
static int
flush_out(struct conn *c)
{
	ssize_t n;

	while (kbuf_avail(&c->out) > 0) {
		n = send(c->fd, kbuf_ptr(&c->out), kbuf_avail(&c->out),
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		if (kbuf_skip(&c->out, (size_t)n) != KEYD_OK)
			return -1;
	}
	/* Wipes what was sent: replies may hold plaintexts. */
	kbuf_compact(&c->out);
	if (kbuf_avail(&c->out) == 0)
		c->queued = 0;
	return 0;
}

/* Runs every complete frame in c->in while the client keeps reading its
 * replies. */
static void
process_frames(struct server *s, struct dispatch *d, struct token_session *ts,
    struct conn *c)
{
	const uint8_t *body;
	size_t len;
	int r;

	while (!c->closing) {
		if (c->queued >= s->max_inflight ||
		    kbuf_avail(&c->out) >= SERVER_OUT_HIGH_WATER)
			break;
		/* A reload swapped the configuration: the frames left wait
		 * in c->in for the worker's next round, which maps the peer
		 * again and answers them under the configuration in force
		 * (the rights and rate bucket of the old one end here). */
		if (atomic_load(&s->cur_generation) != d->generation)
			break;
		r = frame_next(&c->in, s->max_frame, &body, &len);
		if (r == KEYD_ERR_AGAIN)
			break;
		if (r == KEYD_ERR_FRAME_TOO_LARGE) {
			char msg[128];
			/* A frame like any other: it takes a token, and
			 * over the rate its line is folded (dispatch.c). */
			int limited = c->peer.limiter != NULL &&
			    !policy_limiter_take(c->peer.limiter);

			snprintf(msg, sizeof(msg), "frame larger than the "
			    "daemon's max_frame of %u bytes", s->max_frame);
			(void)!dispatch_error_reply(&c->out, 0,
			    KEYD_ERR_FRAME_TOO_LARGE, msg);
			audit_peer(s, "protocol-error",
			    d->cfg->clients[c->peer.client].name,
			    &c->peer.cred, KEYD_ERR_FRAME_TOO_LARGE, msg,
			    limited);
			c->closing = 1;
			break;
		}
		r = dispatch_request(d, ts, &c->peer, body, len, &c->out);
		c->queued++;
		atomic_store(&c->last_active, now_s());
		if (r != KEYD_OK)
			c->closing = 1;
	}
	kbuf_compact(&c->in);
}

static int
has_frame(const struct kbuf *in)
{
	uint32_t n;

	return kbuf_peek_u32(in, &n) == KEYD_OK &&
	    kbuf_avail(in) - FRAME_HDR_LEN >= n;
}

/* A reload came since c's last request: its peer is mapped again under
 * d. Returns 0 if it stays (with its client's new rights and limiter),
 * -1 if it must close (audited). */
static int
conn_remap(struct server *s, struct dispatch *d, struct conn *c)
{
	char why[160];
	size_t client;
	int ambiguous;
	long other;

	if (conn_maps(d, c, &client)) {
		c->peer.client = client;
		c->peer.limiter = &d->limiters[client];
		c->gen = d->generation;
		return 0;
	}
	other = policy_match(d->cfg, &c->peer.cred, &ambiguous);
	if (other < 0)
		snprintf(why, sizeof(why), "after a reload no [client] matches "
		    "the peer admitted as '%s'", c->client_name);
	else
		snprintf(why, sizeof(why), "after a reload the peer admitted as "
		    "'%s' matches client '%s'", c->client_name,
		    d->cfg->clients[other].name);
	/* Not a refusal of the peer's own (those are folded in a flood):
	 * each connection a reload closes has its own record. */
	audit_peer(s, "connection-closed", c->client_name, &c->peer.cred,
	    KEYD_ERR_CLOSED, why, 0);
	return -1;
}

static void
handle_conn(struct server *s, struct token_session *ts, struct conn *c,
    uint32_t events)
{
	struct dispatch *d = gen_get(s);
	struct epoll_event ev;
	uint8_t *p;
	ssize_t n;

	if (c->gen != d->generation && conn_remap(s, d, c) != 0)
		goto close;
	if (events & EPOLLERR)
		goto close;
	if (flush_out(c) < 0)
		goto close;
	/* Requests already buffered go first (they waited on a full out). */
	process_frames(s, d, ts, c);
	if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && !c->closing &&
	    !c->peer_eof && c->queued < s->max_inflight &&
	    kbuf_avail(&c->out) < SERVER_OUT_HIGH_WATER) {
		size_t room = s->max_frame + FRAME_HDR_LEN -
		    kbuf_avail(&c->in);

		if (room > SERVER_READ_CHUNK)
			room = SERVER_READ_CHUNK;
		if (room > 0 && kbuf_reserve(&c->in, room, &p) == KEYD_OK) {
			n = recv(c->fd, p, room, MSG_DONTWAIT);
			/* What recv did not fill was never written: no
			 * wipe of the whole chunk on every read. */
			kbuf_unreserve_unwritten(&c->in, n > 0 ?
			    room - (size_t)n : room);
			if (n == 0)
				c->peer_eof = 1;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				goto close;
			/* Read after a reload's swap: the new configuration
			 * answers them. They wait in c->in for this worker's
			 * next round (EPOLLOUT below brings it back), which
			 * takes the dispatcher in force and maps the peer
			 * again. */
			if (!(n > 0 && gen_stale(s, d)))
				process_frames(s, d, ts, c);
		}
	}
	if (flush_out(c) < 0)
		goto close;
	/* The client is gone or has said all it will: once its complete
	 * requests are answered, any partial frame left is dropped. */
	if (c->peer_eof && kbuf_avail(&c->out) == 0 &&
	    (c->closing || !has_frame(&c->in)))
		goto close;
	if (c->closing && kbuf_avail(&c->out) == 0)
		goto close;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLONESHOT | EPOLLRDHUP;
	if (!c->closing && !c->peer_eof && c->queued < s->max_inflight &&
	    kbuf_avail(&c->out) < SERVER_OUT_HIGH_WATER)
		ev.events |= EPOLLIN;
	/* Requests left in c->in (held back while replies queued up) get
	 * no new EPOLLIN; a writable socket brings the worker back. */
	if (kbuf_avail(&c->out) > 0 || has_frame(&c->in) ||
	    !(ev.events & EPOLLIN))
		ev.events |= EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		goto close;
	gen_put(d);
	return;
close:
	conn_close(s, c);
	gen_put(d);
}

static void *
worker_main(void *arg)
{
	struct server *s = arg;
	struct epoll_event evs[SERVER_EVENTS];
	struct token_session ts;
	int n, i;

	memset(&ts, 0, sizeof(ts));
	for (;;) {
		n = epoll_wait(s->epfd, evs, SERVER_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &stop_tag)
				goto out;
			if (evs[i].data.ptr == &listen_tag)
				accept_all(s);
			else
				handle_conn(s, &ts, evs[i].data.ptr,
				    evs[i].events);
		}
	}
out:
	{
		struct dispatch *d = gen_get(s);

		token_session_close(d->token, &ts);
		gen_put(d);
	}
	return NULL;
}

int
server_start(struct server *s, struct dispatch *d)
{
	struct epoll_event ev;
	long ncpu;
	size_t i;

	s->cur = d;
	atomic_store(&s->cur_generation, d->generation);
	s->audit = d->audit;
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return KEYD_ERR_IO;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.ptr = &listen_tag;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) != 0)
		return KEYD_ERR_IO;
	ev.events = EPOLLIN;
	ev.data.ptr = &stop_tag;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stop_fd, &ev) != 0)
		return KEYD_ERR_IO;

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	s->n_threads = s->workers ? s->workers :
	    (size_t)(ncpu > 0 ? ncpu : 2);
	if ((s->threads = calloc(s->n_threads, sizeof(*s->threads))) == NULL)
		return KEYD_ERR_NOMEM;
	for (i = 0; i < s->n_threads; i++) {
		if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0) {
			s->n_threads = i;
			(void)server_stop(s);
			return KEYD_ERR_IO;
		}
	}
	s->started = 1;
	return KEYD_OK;
}

size_t
server_stop(struct server *s)
{
	uint64_t one = 1;
	struct timespec until;
	size_t stuck = 0;
	long wait_ms;

	if (s->stop_fd >= 0)
		(void)!write(s->stop_fd, &one, sizeof(one));
	clock_gettime(CLOCK_REALTIME, &until);
	wait_ms = SERVER_STOP_WAIT_MS + (long)s->token_timeout_ms;
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	for (size_t i = 0; i < s->n_threads; i++)
		if (pthread_timedjoin_np(s->threads[i], NULL, &until) != 0)
			stuck++;
	s->n_threads = 0;
	s->started = 0;
	/* A worker that did not stop owns its connection: nothing may be
	 * freed under it. */
	s->abandoned = stuck;
	return stuck;
}

void
server_put(struct dispatch *d)
{
	gen_put(d);
}

struct dispatch *
server_swap(struct server *s, struct dispatch *d)
{
	struct dispatch *old;
	size_t client;

	pthread_mutex_lock(&s->gen_mu);
	pthread_mutex_lock(&s->table_mu);
	for (size_t i = 0; i < s->n_slots; i++) {
		struct conn *c = s->conns[i];

		if (c == NULL)
			continue;
		/* The peer's credentials were taken at connect and never
		 * change; its name neither. A connection whose client is gone,
		 * or whose peer is now another client, is woken to be closed
		 * by its worker (conn_remap audits it). */
		if (conn_maps(d, c, &client))
			policy_limiter_adopt(&d->limiters[client]);
		else
			(void)shutdown(c->fd, SHUT_RDWR);
	}
	old = s->cur;
	s->cur = d;
	atomic_store(&s->cur_generation, d->generation);
	pthread_mutex_unlock(&s->table_mu);
	pthread_mutex_unlock(&s->gen_mu);
	return old;
}

void
server_tick(struct server *s)
{
	long now = now_s(), idle = (long)s->idle_timeout_s;

	pthread_mutex_lock(&s->table_mu);
	for (size_t i = 0; i < s->n_slots; i++) {
		struct conn *c = s->conns[i];

		/* shutdown wakes the worker that owns the connection, which
		 * then closes it; the fd cannot be closed under us while the
		 * table lock is held. */
		if (c != NULL && now - atomic_load(&c->last_active) > idle)
			(void)shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&s->table_mu);
	/* Accepting again after running out of descriptors, if nothing
	 * closed since. */
	accept_resume(s);
}

void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	if (s->started)
		(void)server_stop(s);
	if (s->abandoned > 0) {
		if (s->bound)
			(void)unlink(s->path);
		return;
	}
	for (size_t i = 0; s->conns != NULL && i < s->n_slots; i++) {
		if (s->conns[i] != NULL) {
			close(s->conns[i]->fd);
			conn_free(s->conns[i]);
		}
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->bound)
		(void)unlink(s->path);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	free(s->threads);
	free(s->conns);
	free(s->path);
	pthread_mutex_destroy(&s->table_mu);
	pthread_mutex_destroy(&s->accept_mu);
	pthread_mutex_destroy(&s->gen_mu);
	free(s);
}
