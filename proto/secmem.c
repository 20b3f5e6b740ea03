/* secmem.c: locked, non-dumped, wiped memory for secrets. */
#include "secmem.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void
secmem_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

static size_t
page_round(size_t n)
{
	long ps = sysconf(_SC_PAGESIZE);
	size_t page = ps > 0 ? (size_t)ps : 4096;

	return (n + page - 1) / page * page;
}

int
secmem_lock(void *p, size_t n)
{
	if (p == NULL || n == 0)
		return 0;
#ifdef MADV_DONTDUMP
	{
		long ps = sysconf(_SC_PAGESIZE);
		uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096;
		uintptr_t start = (uintptr_t)p & ~(page - 1);
		uintptr_t end = ((uintptr_t)p + n + page - 1) & ~(page - 1);

		/* Only whole pages can be excluded; the caller's region may
		 * share pages with other data, which is then excluded too. */
		(void)madvise((void *)start, end - start, MADV_DONTDUMP);
	}
#endif
	return mlock(p, n) == 0 ? 0 : -1;
}

void
secmem_unlock(void *p, size_t n)
{
	if (p == NULL || n == 0)
		return;
	secmem_wipe(p, n);
	(void)munlock(p, n);
}

/*
 * Each allocation gets its own pages from mmap, so that mlock and
 * MADV_DONTDUMP cover exactly the secret and nothing else shares its pages.
 * The length is kept in a header so that callers that lost track of it
 * (protobuf-c's allocator, say) can still free correctly.
 */
struct secmem_hdr {
	size_t maplen;
	size_t pad;
};

void *
secmem_alloc(size_t n)
{
	size_t maplen;
	struct secmem_hdr *h;

	if (n > SIZE_MAX - sizeof(*h) - 65536)
		return NULL;
	maplen = page_round(n + sizeof(*h));
	h = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h == MAP_FAILED)
		return NULL;
#ifdef MADV_DONTDUMP
	(void)madvise(h, maplen, MADV_DONTDUMP);
#endif
#ifdef MADV_WIPEONFORK
	(void)madvise(h, maplen, MADV_WIPEONFORK);
#endif
	(void)mlock(h, maplen);
	h->maplen = maplen;
	return h + 1;
}

void
secmem_free(void *p, size_t n)
{
	struct secmem_hdr *h;
	size_t maplen;

	(void)n;
	if (p == NULL)
		return;
	h = (struct secmem_hdr *)p - 1;
	/* The length first: the wipe clears the header that holds it, and
	 * munlock and munmap of 0 bytes would leave every page mapped and
	 * locked (found by fuzz_bundle: RSS grew by a page per call). */
	maplen = h->maplen;
	secmem_wipe(h, maplen);
	(void)munlock(h, maplen);
	(void)munmap(h, maplen);
}

int
secmem_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}
