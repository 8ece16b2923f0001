// SPDX-License-Identifier: GPL-2.0
/* Test module: its init fails, so the guest cannot load it. */
#include <linux/errno.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init ktest_fail_init(void)
{
	pr_err("ktest_fail: refusing to load, as asked\n");
	return -ENODEV;
}

module_init(ktest_fail_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktest test module whose init fails");
