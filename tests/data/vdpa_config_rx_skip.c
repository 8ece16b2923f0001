/* The vDPA net simulator's rx_skip config field through vhost-vdpa, the
 * way a VMM reads and writes config space: read it at offset argv[1],
 * write another value there, read it again.  Used by
 * tests/integration/test_rx_skip.py in a guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/vhost.h>

static int get(int fd, unsigned int off, unsigned short *val)
{
	struct vhost_vdpa_config *c = calloc(1, sizeof(*c) + 2);

	c->off = off;
	c->len = 2;
	if (ioctl(fd, VHOST_VDPA_GET_CONFIG, c))
		return -errno;
	memcpy(val, c->buf, 2);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned int off = atoi(argv[1]);
	struct vhost_vdpa_config *c = calloc(1, sizeof(*c) + 2);
	unsigned short before = 0, after = 0, bogus = 0x3333;
	int fd = open(argc > 2 ? argv[2] : "/dev/vhost-vdpa-0", O_RDWR);
	int r1, r2, w;

	if (fd < 0) {
		perror("vhost-vdpa");
		return 1;
	}
	r1 = get(fd, off, &before);
	c->off = off;
	c->len = 2;
	memcpy(c->buf, &bogus, 2);
	w = ioctl(fd, VHOST_VDPA_SET_CONFIG, c) ? -errno : 0;
	r2 = get(fd, off, &after);
	printf("get=%d before=%u set=%d get_again=%d after=%u\n", r1, before, w, r2, after);
	return 0;
}
