"""ktest: carry a virtio patch series from quilt to QEMU numbers and mail."""

__version__ = "0.1.0"
