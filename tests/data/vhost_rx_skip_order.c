#define _GNU_SOURCE
/* VIRTIO_NET_F_RX_SKIP and vhost_net's VHOST_NET_SET_RX_SKIP: acking the
 * bit must fail until the skip is set, and VHOST_RESET_OWNER forgets the
 * skip.  Used by tests/integration/test_rx_skip.py in a guest; prints
 * key=value words, one result per step.  argv[1]: the feature bit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/vhost.h>

#ifndef VHOST_NET_SET_RX_SKIP
#define VHOST_NET_SET_RX_SKIP _IOW(VHOST_VIRTIO, 0x38, __u32)
#endif

static int fd;

static const char *try(unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? strerrorname_np(errno) : "ok";
}

int main(int argc, char **argv)
{
	uint64_t rx_skip = 1ULL << atoi(argv[1]);
	uint64_t base = 1ULL << 32 | 1ULL << 15;	/* VERSION_1, MRG_RXBUF */
	uint64_t offered, f;
	__u32 v = 2;

	fd = open("/dev/vhost-net", O_RDWR);
	if (fd < 0 || ioctl(fd, VHOST_SET_OWNER) || ioctl(fd, VHOST_GET_FEATURES, &offered)) {
		perror("vhost-net");
		return 1;
	}
	printf("offered=%d", !!(offered & rx_skip));
	f = base | rx_skip;
	printf(" before_set=%s", try(VHOST_SET_FEATURES, &f));
	printf(" set_skip=%s", try(VHOST_NET_SET_RX_SKIP, &v));
	f = rx_skip | 1ULL << 15;
	printf(" without_version_1=%s", try(VHOST_SET_FEATURES, &f));
	f = base | rx_skip;
	printf(" after_set=%s", try(VHOST_SET_FEATURES, &f));
	printf(" reset_owner=%s", try(VHOST_RESET_OWNER, NULL));
	printf(" set_owner=%s", try(VHOST_SET_OWNER, NULL));
	printf(" after_reset=%s", try(VHOST_SET_FEATURES, &f));
	f = base;
	printf(" without_bit=%s\n", try(VHOST_SET_FEATURES, &f));
	return 0;
}
