/* sandbox.c: the seccomp filters (libseccomp), Landlock and the
 * privilege drop. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "keyd_err.h"

/* Calls allowed with any arguments in the socket-facing process. Found by
 * tracing keyd serving every operation (strace -f -c), plus what glibc's
 * thread exit, abort and malloc paths use. No PKCS#11 module runs here. */
static const char *const allowed[] = {
	/* I/O on the socket, the audit log and token files */
	"read", "write", "readv", "writev", "pread64", "pwrite64",
	"recvfrom", "recvmsg", "sendto", "sendmsg", "close", "shutdown",
	"accept4", "getsockopt", "poll", "ppoll", "epoll_wait", "epoll_pwait",
	"epoll_ctl", "epoll_create1", "openat", "newfstatat", "fstat", "statx", "lseek",
	"fcntl", "flock", "getdents64", "fdatasync", "fsync", "ftruncate",
	"access", "faccessat", "faccessat2", "readlink", "unlink", "unlinkat",
	"rename", "renameat", "renameat2", "mkdir", "dup", "umask",
	"socketpair",
	/* memory */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock",
	"munlock",
	/* threads and time */
	"futex", "set_robust_list", "rseq", "sched_yield", "sched_getaffinity",
	"nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday",
	"restart_syscall", "exit", "exit_group", "getpid", "gettid",
	"getuid", "geteuid", "getgid", "getegid", "getrandom",
	"rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "tgkill",
	"sigaltstack",
	"prlimit64", "getrlimit", "sysinfo", "uname",
	/* the signal and wake-up descriptors */
	"eventfd2", "signalfd4",
	/* the syslog mirror connecting again (syslogq.c) */
	"connect",
};

static int
allow(scmp_filter_ctx ctx, const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);

	/* A call this architecture does not have is simply not needed. */
	if (nr == __NR_SCMP_ERROR)
		return 0;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

int
sandbox_install(char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	size_t i;
	int rc = 0;

	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return KEYD_ERR_INTERNAL;
	}
	rc |= seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		rc |= allow(ctx, allowed[i]);
#ifdef KEYD_SANITIZE_BUILD
	/* LeakSanitizer's exit-time check calls prctl and clones a tracer
	 * task (not a thread); only sanitizer builds, which are for
	 * testing, allow them. */
	rc |= allow(ctx, "prctl");
	rc |= allow(ctx, "clone");
	rc |= allow(ctx, "ptrace");
	rc |= allow(ctx, "wait4");
	rc |= allow(ctx, "waitpid");
	rc |= allow(ctx, "getppid");
	rc |= allow(ctx, "kill");
	rc |= allow(ctx, "tkill");
	rc |= allow(ctx, "process_vm_readv");
#endif
	/* isatty() only: no other terminal or device control. */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
	    SCMP_A1(SCMP_CMP_EQ, TCGETS, 0));
	/* New threads only: a clone without CLONE_THREAD would be a new
	 * process, which keyd never makes. */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* glibc tries clone3 first; with ENOSYS it falls back to clone,
	 * whose flags the filter can see (clone3 passes them in memory). */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3),
	    0);
	/* A restarted token process's channels get their reply timeout
	 * (token_proxy.c): SO_RCVTIMEO and nothing else. */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 2,
	    SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET, 0),
	    SCMP_A2(SCMP_CMP_EQ, SO_RCVTIMEO, 0));
	/* Unix sockets only: the syslog mirror's new socket after its
	 * daemon restarted (syslogq.c). */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	    SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
	if (rc != 0) {
		snprintf(err, errlen, "building the seccomp filter failed: %s",
		    strerror(-rc));
		seccomp_release(ctx);
		return KEYD_ERR_INTERNAL;
	}
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0) {
		snprintf(err, errlen, "loading the seccomp filter failed: %s",
		    strerror(-rc));
		return KEYD_ERR_INTERNAL;
	}
	return KEYD_OK;
}

/* What no PKCS#11 module needs, and what an attacker who took over the
 * token process would want next: another program, another process's
 * memory, the kernel, mounts and namespaces. Answered with EPERM, never
 * by killing: a module that tries one of them gets an error it can
 * handle, and keyd goes on serving. */
static const char *const token_denied[] = {
	"execve", "execveat", "ptrace", "process_vm_readv",
	"process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
	"move_mount", "open_tree", "fsopen", "fsmount", "fsconfig",
	"init_module", "finit_module", "delete_module", "kexec_load",
	"kexec_file_load", "bpf", "perf_event_open", "userfaultfd",
	"setns", "unshare", "open_by_handle_at", "name_to_handle_at",
	"reboot", "swapon", "swapoff", "acct", "quotactl", "syslog",
	"iopl", "ioperm", "add_key", "request_key", "keyctl",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"setuid", "setgid", "setreuid", "setregid", "setresuid",
	"setresgid", "setgroups", "setfsuid", "setfsgid", "capset",
	"personality", "lookup_dcookie", "fanotify_init", "seccomp",
};

static const char *const token_no_uring[] = {
	"io_uring_setup", "io_uring_enter", "io_uring_register",
};

int
sandbox_install_token(int network, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int rc = 0, nr;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return KEYD_ERR_INTERNAL;
	}
	rc |= seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; i < sizeof(token_denied) / sizeof(token_denied[0]);
	    i++) {
		nr = seccomp_syscall_resolve_name(token_denied[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	/* New namespaces: a clone with any CLONE_NEW* flag. */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWNS, CLONE_NEWNS));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3),
	    0);
	/* No io_uring: its operations are not system calls this filter sees
	 * (IORING_OP_SOCKET would open the network sockets refused below),
	 * and it is a large part of the kernel to expose. ENOSYS, as on a
	 * kernel without it, so that a module that tries it falls back to
	 * plain system calls. */
	for (size_t i = 0; i < sizeof(token_no_uring) /
	    sizeof(token_no_uring[0]); i++) {
		nr = seccomp_syscall_resolve_name(token_no_uring[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	}
	/* The network only where the module is said to need it. */
	if (!network) {
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
		    SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET, 0));
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
		    SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6, 0));
	}
	if (rc != 0) {
		snprintf(err, errlen, "building the token process's seccomp "
		    "filter failed: %s", strerror(-rc));
		seccomp_release(ctx);
		return KEYD_ERR_INTERNAL;
	}
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0) {
		snprintf(err, errlen, "loading the token process's seccomp "
		    "filter failed: %s", strerror(-rc));
		return KEYD_ERR_INTERNAL;
	}
	return KEYD_OK;
}

int
sandbox_drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
	uid_t r, e, s;

	if (cfg->user == NULL)
		return KEYD_OK;
	/* Dropped already (a process started by one that had dropped). */
	if (getresuid(&r, &e, &s) == 0 && r == cfg->user_uid &&
	    e == cfg->user_uid && s == cfg->user_uid && cfg->user_uid != 0 &&
	    getgid() == cfg->user_gid && getegid() == cfg->user_gid)
		return KEYD_OK;
	if (setgroups(1, &cfg->user_gid) != 0 ||
	    setresgid(cfg->user_gid, cfg->user_gid, cfg->user_gid) != 0 ||
	    setresuid(cfg->user_uid, cfg->user_uid, cfg->user_uid) != 0) {
		snprintf(err, errlen, "cannot switch to user %s: %s", cfg->user,
		    strerror(errno));
		return KEYD_ERR_CONFIG;
	}
	if (getresuid(&r, &e, &s) != 0 || r != cfg->user_uid ||
	    e != cfg->user_uid || s != cfg->user_uid ||
	    (cfg->user_uid != 0 && setuid(0) == 0)) {
		snprintf(err, errlen, "switching to user %s did not take",
		    cfg->user);
		return KEYD_ERR_INTERNAL;
	}
	/* A drop clears dumpable; set it again explicitly anyway. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	return KEYD_OK;
}

/* Landlock, as far as the kernel's ABI goes (1 to 3 are enough here). */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#define LL_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_ALL_V1 ((1ULL << 13) - 1)

static __u64
ll_handled(int abi)
{
	__u64 h = LL_ALL_V1;

	if (abi >= 2)
		h |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		h |= LANDLOCK_ACCESS_FS_TRUNCATE;
	return h;
}

/* Allows access below path; a path that does not exist is skipped. */
static int
ll_allow(int rfd, const char *path, __u64 access, __u64 handled)
{
	struct landlock_path_beneath_attr pb;
	int fd = open(path, O_PATH | O_CLOEXEC);
	struct stat st;
	int r;

	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == EACCES ?
		    0 : -1;
	memset(&pb, 0, sizeof(pb));
	pb.parent_fd = fd;
	pb.allowed_access = access & handled;
	/* A file takes file rights only. */
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		pb.allowed_access &= LANDLOCK_ACCESS_FS_EXECUTE |
		    LANDLOCK_ACCESS_FS_WRITE_FILE |
		    LANDLOCK_ACCESS_FS_READ_FILE |
		    (handled & LANDLOCK_ACCESS_FS_TRUNCATE);
	r = (int)syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH,
	    &pb, 0);
	close(fd);
	return r;
}

int
sandbox_landlock(const char *const *rw_dirs, size_t n_rw,
    const char *unlink_dir, char *err, size_t errlen)
{
	/* What the socket-facing process reads once it serves: shared
	 * libraries and their data (dlopen'ed NSS and gconv modules, time
	 * zones), the files name lookups read, and /dev/null and the
	 * random devices. Not /etc as a whole, where PIN files live. */
	static const char *const ro[] = {
		"/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache",
		"/etc/localtime", "/etc/passwd", "/etc/group",
		"/etc/nsswitch.conf", "/etc/ssl", "/dev/null", "/dev/urandom",
		"/dev/random", "/proc/self",
	};
	struct landlock_ruleset_attr ra;
	int abi, rfd, rc = 0;
	__u64 handled;

	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		snprintf(err, errlen, "Landlock is not available in this "
		    "kernel (%s)", strerror(errno));
		return KEYD_ERR_UNSUPPORTED;
	}
	handled = ll_handled(abi);
	memset(&ra, 0, sizeof(ra));
	ra.handled_access_fs = handled;
	rfd = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof(ra), 0);
	if (rfd < 0) {
		snprintf(err, errlen, "landlock_create_ruleset: %s",
		    strerror(errno));
		return KEYD_ERR_INTERNAL;
	}
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		rc |= ll_allow(rfd, ro[i], LL_READ | LANDLOCK_ACCESS_FS_EXECUTE,
		    handled);
	for (size_t i = 0; i < n_rw; i++)
		if (rw_dirs[i] != NULL)
			rc |= ll_allow(rfd, rw_dirs[i], handled &
			    ~LANDLOCK_ACCESS_FS_EXECUTE, handled);
	/* Removing a file there (the socket at a stop), nothing else: a
	 * file beside the socket, such as a PIN file, stays unreadable. */
	if (unlink_dir != NULL)
		rc |= ll_allow(rfd, unlink_dir, LANDLOCK_ACCESS_FS_REMOVE_FILE,
		    handled);
	if (rc != 0) {
		snprintf(err, errlen, "landlock_add_rule: %s", strerror(errno));
		close(rfd);
		return KEYD_ERR_INTERNAL;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    syscall(SYS_landlock_restrict_self, rfd, 0) != 0) {
		snprintf(err, errlen, "landlock_restrict_self: %s",
		    strerror(errno));
		close(rfd);
		return KEYD_ERR_INTERNAL;
	}
	close(rfd);
	return KEYD_OK;
}
