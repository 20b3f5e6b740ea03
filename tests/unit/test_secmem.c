/* test_secmem: memory for secrets is zeroed, usable, excluded from dumps,
 * and really returned (unmapped) when freed; comparison is exact. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ktest.h"
#include "secmem.h"

/* 1 if the page holding p is mapped, 0 if not (mincore says ENOMEM). */
static int
mapped(const void *p)
{
	long ps = sysconf(_SC_PAGESIZE);
	uintptr_t page = (uintptr_t)p & ~((uintptr_t)ps - 1);
	unsigned char vec;

	if (mincore((void *)page, (size_t)ps, &vec) == 0)
		return 1;
	return errno == ENOMEM ? 0 : -1;
}

int
main(void)
{
	size_t sizes[] = { 1, 32, 4000, 5000, 70000 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *p = secmem_alloc(sizes[i]);
		int zero = 1;

		CHECK(p != NULL);
		if (p == NULL)
			continue;
		for (size_t j = 0; j < sizes[i]; j++)
			zero &= p[j] == 0;
		CHECKF(zero, "allocation of %zu bytes is not zeroed", sizes[i]);
		memset(p, 0xa5, sizes[i]);
		CHECK_INT(mapped(p), 1);
		CHECK_INT(mapped(p + sizes[i] - 1), 1);
		secmem_free(p, sizes[i]);
		/* Freed means unmapped: a secret page left mapped (and locked)
		 * is both a leak and a copy of the secret. */
		CHECKF(mapped(p) == 0, "%zu-byte allocation still mapped after "
		    "secmem_free", sizes[i]);
		CHECKF(mapped(p + sizes[i] - 1) == 0, "last page of a %zu-byte "
		    "allocation still mapped", sizes[i]);
	}
	secmem_free(NULL, 10);

	{
		uint8_t a[16], b[16];

		memset(a, 1, sizeof(a));
		memcpy(b, a, sizeof(b));
		CHECK_INT(secmem_equal(a, b, sizeof(a)), 1);
		b[15] ^= 0x80;
		CHECK_INT(secmem_equal(a, b, sizeof(a)), 0);
		CHECK_INT(secmem_equal(a, b, 15), 1);
		secmem_wipe(a, sizeof(a));
		CHECK_INT(a[0] | a[15], 0);
	}
	return ktest_result("test_secmem");
}
