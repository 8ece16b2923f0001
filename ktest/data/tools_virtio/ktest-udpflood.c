// SPDX-License-Identifier: GPL-2.0
/*
 * Send a fixed number of UDP datagrams as fast as sendmmsg allows and say
 * how long it took: a TX load for virtio_net whose cost per packet can be
 * read next to the driver's counters (interrupts, kicks, completions).
 *
 *   ktest-udpflood ADDR PORT COUNT [SIZE [BATCH]]
 *
 * Prints one line: KTEST-UDPFLOOD sent=N errors=E seconds=S pps=P
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 64

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char buf[65536];
	struct mmsghdr msgs[MAX_BATCH];
	struct iovec iov[MAX_BATCH];
	struct sockaddr_in to = { .sin_family = AF_INET };
	long count, size = 64, batch = 32, sent = 0, errors = 0;
	double start, took;
	int fd, i;

	if (argc < 4) {
		fprintf(stderr, "usage: %s ADDR PORT COUNT [SIZE [BATCH]]\n", argv[0]);
		return 2;
	}
	if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
		fprintf(stderr, "ktest-udpflood: bad address %s\n", argv[1]);
		return 2;
	}
	to.sin_port = htons(atoi(argv[2]));
	count = atol(argv[3]);
	if (argc > 4)
		size = atol(argv[4]);
	if (argc > 5)
		batch = atol(argv[5]);
	if (count <= 0 || size < 0 || size > (long)sizeof(buf) || batch < 1 || batch > MAX_BATCH) {
		fprintf(stderr, "ktest-udpflood: COUNT > 0, 0 <= SIZE <= %zu, 1 <= BATCH <= %d\n",
			sizeof(buf), MAX_BATCH);
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	for (i = 0; i < (int)size; i++)
		buf[i] = (char)i;
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < batch; i++) {
		iov[i].iov_base = buf;
		iov[i].iov_len = size;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &to;
		msgs[i].msg_hdr.msg_namelen = sizeof(to);
	}
	start = now();
	while (sent + errors < count) {
		long want = count - sent - errors;
		int n = sendmmsg(fd, msgs, want < batch ? want : batch, 0);

		if (n < 0) {
			/* A full qdisc or socket buffer: count it and go on. */
			if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
				perror("sendmmsg");
				return 1;
			}
			errors++;
			continue;
		}
		sent += n;
	}
	took = now() - start;
	printf("KTEST-UDPFLOOD sent=%ld errors=%ld seconds=%.6f pps=%.0f\n",
	       sent, errors, took, took > 0 ? sent / took : 0.0);
	return 0;
}
