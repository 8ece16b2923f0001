// SPDX-License-Identifier: GPL-2.0
/* Test module: a real WARN_ON at load, so ktest's console watcher sees one. */
#include <linux/bug.h>
#include <linux/module.h>

static int __init ktest_warn_init(void)
{
	WARN(1, "ktest_warn: deliberate warning for ktest's tests\n");
	return 0;
}

static void __exit ktest_warn_exit(void)
{
}

module_init(ktest_warn_init);
module_exit(ktest_warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktest test module that warns at load");
