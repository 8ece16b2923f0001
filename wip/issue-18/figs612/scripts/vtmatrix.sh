#!/bin/sh
B=/ktest/bin/virtio_test
while read -r opts; do
	for io in --no-in-order --in-order; do
		s=$(date +%s)
		out=$($B $opts $io 2>&1); rc=$?
		e=$(date +%s)
		echo "MX opts=[$opts $io] rc=$rc t=$((e - s)) $(echo "$out" | grep -E 'avail ring entries|used ring entries read' | tr '\n' ' ')"
	done
done <<'LIST'
--batch=1
--batch=64
--batch=random
--reset
--reset=1000 --batch=random
--no-event-idx --batch=64
--no-event-idx --batch=random
--indirect --batch=random
--no-indirect --batch=random
--delayed-interrupt --batch=64
--indirect --sg=4 --batch=64
--indirect --sg=16 --batch=random --reset=5000
--no-indirect --sg=4 --batch=64
--no-indirect --sg=3 --batch=random
--no-indirect --sg=5 --batch=random --reset=3000
--no-indirect --sg=3 --no-event-idx --delayed-interrupt --batch=1
--no-virtio-1 --batch=64
LIST
echo MX-DONE
