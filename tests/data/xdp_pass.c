/* XDP_PASS, for tests/integration/test_rx_skip.py: clang -O2 -target bpf -c */
__attribute__((section("xdp"), used)) int xdp_pass(void *ctx)
{
	return 2;	/* XDP_PASS */
}

char _license[] __attribute__((section("license"), used)) = "GPL";
