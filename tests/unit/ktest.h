/*
 * ktest.h: the few helpers keyd's unit tests share. A test is a plain
 * program: each failed check prints where and what, the test goes on, and
 * main returns ktest_result() (non-zero if any check failed).
 */
#ifndef KEYD_KTEST_H
#define KEYD_KTEST_H

#include <stdio.h>
#include <stdlib.h>

static int ktest_failures;
static int ktest_checks;

/* CHECK(cond): counts a failure, printing the condition, if cond is
 * false. */
#define CHECK(cond) \
	do { \
		ktest_checks++; \
		if (!(cond)) { \
			ktest_failures++; \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
			    __LINE__, #cond); \
		} \
	} while (0)

/* CHECK_INT(a, b): a == b for integers, printing both on failure. */
#define CHECK_INT(a, b) \
	do { \
		long long ktest_a_ = (long long)(a), ktest_b_ = (long long)(b); \
		ktest_checks++; \
		if (ktest_a_ != ktest_b_) { \
			ktest_failures++; \
			fprintf(stderr, "%s:%d: check failed: %s == %s " \
			    "(%lld != %lld)\n", __FILE__, __LINE__, #a, #b, \
			    ktest_a_, ktest_b_); \
		} \
	} while (0)

/* CHECKF(cond, fmt, ...): CHECK with a printf-style note on failure. */
#define CHECKF(cond, ...) \
	do { \
		ktest_checks++; \
		if (!(cond)) { \
			ktest_failures++; \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
			    __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* ktest_result: prints a summary; returns the exit status for main. */
static inline int
ktest_result(const char *name)
{
	if (ktest_failures != 0) {
		fprintf(stderr, "%s: %d of %d checks FAILED\n", name,
		    ktest_failures, ktest_checks);
		return 1;
	}
	printf("%s: all %d checks passed\n", name, ktest_checks);
	return 0;
}

#endif
