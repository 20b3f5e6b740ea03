/* sandbox.c: the seccomp allowlist (libseccomp). */
#include "sandbox.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "keyd_err.h"

/* Calls allowed with any arguments. Found by tracing keyd serving every
 * operation on SoftHSM2 (strace -f -c), plus what glibc's thread exit,
 * abort and malloc paths use. */
static const char *const allowed[] = {
	/* I/O on the socket, the audit log and token files */
	"read", "write", "readv", "writev", "pread64", "pwrite64",
	"recvfrom", "recvmsg", "sendto", "sendmsg", "close", "shutdown",
	"accept4", "getsockopt", "poll", "ppoll", "epoll_wait", "epoll_pwait",
	"epoll_ctl", "epoll_create1", "openat", "newfstatat", "fstat", "statx", "lseek",
	"fcntl", "flock", "getdents64", "fdatasync", "fsync", "ftruncate",
	"access", "faccessat", "faccessat2", "readlink", "unlink", "unlinkat",
	"rename", "renameat", "renameat2", "mkdir", "dup", "umask",
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
	/* What the modules keyd is tested on do besides, all on descriptors
	 * they hold: opencryptoki's C_Login rewrites its token file with
	 * fchmod and fchown, its C_Finalize detaches its shared memory;
	 * tpm2-pkcs11 logs through GLib, which asks getpeername of its
	 * descriptors (and isatty, ioctl TCGETS, below). */
	"fchmod", "fchown", "shmdt", "getpeername",
};

/* Extra calls a network HSM's module needs. */
static const char *const network_calls[] = {
	"bind", "getsockname", "setsockopt", "sendmmsg",
	"recvmmsg", "select", "pselect6",
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
sandbox_install(int network, char *err, size_t errlen)
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
	/* Unix sockets only (the syslog mirror's new socket after its
	 * daemon restarted, syslogq.c; a smartcard module's pcscd), unless
	 * the module talks to a network HSM. */
	if (network) {
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket),
		    0);
		for (i = 0; i < sizeof(network_calls) /
		    sizeof(network_calls[0]); i++)
			rc |= allow(ctx, network_calls[i]);
	} else {
		/* datum_b spelled out (EQ ignores it): the two-value form
		 * leaves it to the initializer, which clang's
		 * -Wmissing-field-initializers refuses. */
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket),
		    1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
	}
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
