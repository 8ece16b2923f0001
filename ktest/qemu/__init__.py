"""Boot test kernels under QEMU with a busybox initramfs."""
