import sys
sys.path.insert(0, "/work/wt/figs612")
from tests.integration import test_vhost_net as t
script = ("ls -l /dev/net/tun /dev/vhost-net\n" + t._script(t.VARIANTS)
          + "rmmod vhost_net && insmod /ktest/modules/vhost_net.ko experimental_zcopytx=1 && "
          + "echo zcopytx=$(cat /sys/module/vhost_net/parameters/experimental_zcopytx)\n"
          + t._script(t.ZEROCOPY, zc=False))
open("/work/figs612-out/vnt300/script.sh", "w").write(script)
