/*
 * fuzz.h: the entry points every fuzz target defines, as libFuzzer calls
 * them. A target is built twice from the same source: with libFuzzer
 * (KEYD_FUZZ=ON, clang -fsanitize=fuzzer) and with replay_main.c, a plain
 * main that feeds it each file of its corpus, which ctest runs (label
 * fuzz). See docs/fuzzing.md.
 */
#ifndef KEYD_FUZZ_H
#define KEYD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* One input. Returns 0; a bug aborts (a sanitizer report, or fuzz_check). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Once, before the first input. Optional: targets that need set-up (the
 * token of the dispatcher target) define it. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* fuzz_check: a property the target asserts. When it does not hold, the
 * target prints what and where and aborts, which libFuzzer reports as a
 * crash and the replay as a failure. Kept in every build type (no
 * assert(), which NDEBUG removes). */
#define fuzz_check(cond) \
	do { \
		if (!(cond)) \
			fuzz_fail(__FILE__, __LINE__, #cond); \
	} while (0)

static inline __attribute__((noreturn)) void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
	abort();
}

#endif
