"""ktest's jobs on LAVA, the lab engine KernelCI and many companies run.

A job is written once (``jobdef``: kernel, ktest's initramfs, one
lava-test-case per run), tried here with ``lava-run`` and a qemu device
ktest describes itself (``device``, ``local``), sent to a lab with lavacli
(``submit``), and its log read back into ktest's own run records
(``results``), so ``ktest bench compare`` puts a lab's numbers beside
local ones.
"""
