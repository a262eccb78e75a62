//! rtnetlink answers and notifications (what the next-hop thread reads from the kernel):
//! parsing never panics, and the resolver accepts whatever the parser returns.
#![no_main]
use libfuzzer_sys::fuzz_target;
use backend::xdp::netlink::{self, Resolver};

fuzz_target!(|data: &[u8]| {
    let mut r = Resolver::new([(3, [2, 0, 0, 0, 0, 1])]);
    let dst = "10.0.0.9".parse().unwrap();
    for m in netlink::parse(data).into_iter().flatten() {
        r.route(dst, Some(&m));
        r.on_message(&m);
    }
    let _ = r.changes();
});
