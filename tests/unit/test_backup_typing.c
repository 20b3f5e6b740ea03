/*
 * test_backup_typing.c: the line said after each typed share of how many
 * more are needed (backup_typing_needed), for one group and for groups.
 * The typing itself needs a terminal: tests/integration/backup_typing.sh
 * drives it through a pseudo-terminal.
 */
#include <string.h>

#include "backup_typing.h"
#include "bundle.h"
#include "ktest.h"

static void
share_of(struct slip39_share *s, unsigned g, unsigned m)
{
	memset(s, 0, sizeof(*s));
	s->group_index = (uint8_t)g;
	s->member_index = (uint8_t)m;
}

static void
check(const struct bundle *b, const struct slip39_share *s, size_t n,
    const char *want)
{
	char buf[512];

	backup_typing_needed(b, s, n, buf, sizeof(buf));
	CHECKF(strcmp(buf, want) == 0, "got '%s', want '%s'", buf, want);
}

int
main(void)
{
	struct bundle b;
	struct slip39_share s[4] = { { 0 } };
	char small[8];

	memset(&b, 0, sizeof(b));
	b.group_threshold = 1;
	b.group_count = 1;
	b.member_threshold[0] = 3;
	b.member_count[0] = 5;
	check(&b, s, 0, "3 more shares needed (0 of 3 given)");
	share_of(&s[0], 0, 4);
	share_of(&s[1], 0, 1);
	check(&b, s, 2, "1 more share needed (2 of 3 given)");
	share_of(&s[2], 0, 0);
	check(&b, s, 3, "enough shares (3 of 3)");

	/* 2 of {2 of 3, 1 of 1, 3 of 5}. */
	b.group_threshold = 2;
	b.group_count = 3;
	b.member_threshold[0] = 2;
	b.member_threshold[1] = 1;
	b.member_threshold[2] = 3;
	check(&b, s, 0, "group 1: 2 more shares (0 of 2); group 2: 1 more "
	    "share (0 of 1); group 3: 3 more shares (0 of 3); 2 more groups "
	    "needed (0 of 2 done)");
	share_of(&s[0], 2, 0);
	share_of(&s[1], 1, 0);
	check(&b, s, 2, "group 1: 2 more shares (0 of 2); group 2: done; "
	    "group 3: 2 more shares (1 of 3); 1 more group needed (1 of 2 "
	    "done)");
	share_of(&s[2], 0, 0);
	share_of(&s[3], 0, 2);
	check(&b, s, 4, "group 1: done; group 2: done; group 3: 2 more shares "
	    "(1 of 3); enough groups (2 of 2)");
	/* Truncated, always terminated. */
	backup_typing_needed(&b, s, 4, small, sizeof(small));
	CHECK(strlen(small) == sizeof(small) - 1);
	return ktest_result("test_backup_typing");
}
