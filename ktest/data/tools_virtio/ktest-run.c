// SPDX-License-Identifier: GPL-2.0
/*
 * ktest-run: run a command and report what it cost, in one parseable line.
 *
 * ringtest prints nothing on success, and busybox's time(1) has neither
 * nanosecond wall time nor context switches, so the guest times each run
 * with this instead:
 *
 *   KTEST-RUN <tags...> status=0 wall_ns=... utime_us=... stime_us=...
 *             nvcsw=... nivcsw=... maxrss_kb=...
 *
 * Tags are passed with -t key=value before the command; the command's own
 * output is left as it is so that counters it prints can be parsed too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long tv_us(struct timeval tv)
{
	return tv.tv_sec * 1000000LL + tv.tv_usec;
}

int main(int argc, char **argv)
{
	char tags[4096] = "";
	struct rusage ru;
	long long start, wall;
	int status, opt, code;
	pid_t pid;

	while ((opt = getopt(argc, argv, "+t:")) != -1) {
		if (opt != 't') {
			fprintf(stderr, "usage: %s [-t key=value]... -- command [args]\n", argv[0]);
			return 2;
		}
		if (!strchr(optarg, '=') || strchr(optarg, ' ')) {
			fprintf(stderr, "ktest-run: tag '%s' is not key=value\n", optarg);
			return 2;
		}
		strncat(tags, optarg, sizeof(tags) - strlen(tags) - 2);
		strcat(tags, " ");
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: %s [-t key=value]... -- command [args]\n", argv[0]);
		return 2;
	}
	fflush(stdout);
	start = now_ns();
	pid = fork();
	if (pid < 0) {
		perror("ktest-run: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "ktest-run: %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("ktest-run: wait4");
		return 2;
	}
	wall = now_ns() - start;
	if (WIFEXITED(status))
		code = WEXITSTATUS(status);
	else
		code = 128 + WTERMSIG(status);
	printf("KTEST-RUN %sstatus=%d wall_ns=%lld utime_us=%lld stime_us=%lld nvcsw=%ld nivcsw=%ld maxrss_kb=%ld\n",
	       tags, code, wall, tv_us(ru.ru_utime), tv_us(ru.ru_stime),
	       ru.ru_nvcsw, ru.ru_nivcsw, ru.ru_maxrss);
	fflush(stdout);
	return code;
}
