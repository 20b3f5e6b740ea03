/*
 * replay_main.c: the plain main a fuzz target is linked with outside
 * libFuzzer (p11-kit's fuzz/main.c, s2n's tests/fuzz do the same). It calls
 * LLVMFuzzerInitialize, if the target has one, then LLVMFuzzerTestOneInput
 * once for every file named on the command line and every regular file of
 * every directory named (not recursively, in name order, so that two runs
 * replay the same sequence). ctest runs it over each corpus in the tree,
 * so that a crash once found stays fixed.
 *
 * It fails (exit 1) when a path cannot be read and when it found no input
 * at all, so that a corpus moved away cannot make the test pass. When an
 * input crashes the target, the file's name is printed before the process
 * dies: by a signal handler for plain crashes and aborts (fuzz_check), and
 * by the sanitizers' death callback in sanitizer builds.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* The largest input replayed; libFuzzer's own -max_len for these targets
 * is far below it. */
#define REPLAY_MAX_INPUT (4u * 1024u * 1024u)

#pragma weak LLVMFuzzerInitialize
/* Present in sanitizer builds only. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static char current[4096];
static size_t current_len;

static void
say_current(void)
{
	static const char pre[] = "replay: the input that failed: ";

	if (current_len == 0)
		return;
	/* write(2) only: this runs in a signal handler. */
	(void)!write(STDERR_FILENO, pre, sizeof(pre) - 1);
	(void)!write(STDERR_FILENO, current, current_len);
	(void)!write(STDERR_FILENO, "\n", 1);
}

static void
on_crash(int sig)
{
	say_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int
replay_file(const char *path, size_t *count)
{
	FILE *f = NULL;
	uint8_t *buf = NULL;
	size_t n;
	struct stat st;
	int ret = -1;

	if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &st) != 0) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path,
		    strerror(errno));
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > REPLAY_MAX_INPUT) {
		fprintf(stderr, "replay: %s is larger than %u bytes\n", path,
		    REPLAY_MAX_INPUT);
		goto out;
	}
	/* One byte more than the file, so that an empty input still has a
	 * buffer of its own that ASan can watch. */
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fprintf(stderr, "replay: out of memory\n");
		goto out;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	if (ferror(f) || n != (size_t)st.st_size) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		goto out;
	}
	current_len = strlen(path) < sizeof(current) ? strlen(path) :
	    sizeof(current) - 1;
	memcpy(current, path, current_len);
	(void)LLVMFuzzerTestOneInput(buf, n);
	current_len = 0;
	(*count)++;
	ret = 0;
out:
	free(buf);
	if (f != NULL)
		fclose(f);
	return ret;
}

static int
replay_dir(const char *dir, size_t *count)
{
	struct dirent **names = NULL;
	char path[4096];
	struct stat st;
	int n, i, ret = 0;

	if ((n = scandir(dir, &names, NULL, alphasort)) < 0) {
		fprintf(stderr, "replay: cannot list %s: %s\n", dir,
		    strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		int len = snprintf(path, sizeof(path), "%s/%s", dir,
		    names[i]->d_name);

		if (len < 0 || (size_t)len >= sizeof(path)) {
			fprintf(stderr, "replay: path too long in %s\n", dir);
			ret = -1;
		} else if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    replay_file(path, count) != 0) {
			ret = -1;
		}
		free(names[i]);
	}
	free(names);
	return ret;
}

int
main(int argc, char **argv)
{
	static const int sigs[] = { SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE };
	struct stat st;
	size_t count = 0;
	int i, ret = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n"
		    "  runs the fuzz target once on each file (each file of "
		    "each directory)\n", argv[0]);
		return 2;
	}
	/* Under a sanitizer, its own handlers report a crash (and then call
	 * the death callback); only an abort (fuzz_check) is ours to catch.
	 * Without one, every crash signal is. */
	if (__sanitizer_set_death_callback != NULL) {
		__sanitizer_set_death_callback(say_current);
		signal(SIGABRT, on_crash);
	} else {
		for (i = 0; i < (int)(sizeof(sigs) / sizeof(sigs[0])); i++)
			signal(sigs[i], on_crash);
	}
	if (LLVMFuzzerInitialize != NULL)
		(void)LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			    strerror(errno));
			ret = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], &count) != 0)
				ret = 1;
		} else if (replay_file(argv[i], &count) != 0) {
			ret = 1;
		}
	}
	if (count == 0) {
		fprintf(stderr, "replay: no input found\n");
		ret = 1;
	}
	printf("replay: %zu inputs, %s\n", count, ret == 0 ? "all passed" :
	    "some could not be read");
	return ret;
}
