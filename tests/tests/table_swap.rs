//! The control side swaps tables while workers forward: workers never
//! stop, and each burst sees either the old or the new tables.

use dataplane::l3::{Adj, Target, VrfId};
use dataplane::runtime::Runtime;
use dataplane::testgen::GenConfig;
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn routes_change_under_traffic_without_stopping_workers() {
    let spec = vrouter_tests::two_port_spec("swap", 1, 1, Some(GenConfig { rate_pps: 200_000, ..Default::default() }));
    let rt = Runtime::start(&spec).expect("start");
    let w = rt.workers()[0].stats().clone();
    let g = rt.generator_stats().expect("gen").clone();
    let no_route = || w.dropped(dataplane::DropReason::Blackhole);
    wait_until("traffic", || g.rx_valid.get() > 10_000);
    assert_eq!(no_route(), 0);

    // Workers are RCU readers and pass quiescent points while forwarding.
    assert_eq!(rt.rcu().readers(), 1);
    rt.rcu().synchronize_timeout(Duration::from_secs(2)).expect("workers pass quiescent points");

    // Point the route at a blackhole: the sink stops receiving.
    let net = "10.1.0.0".parse().expect("literal");
    let original = {
        let mut l3 = rt.l3();
        let bh = l3.adjacency(Adj::Drop).expect("adjacency");
        l3.replace_route(VrfId(0), net, 16, Target::Adj(bh)).expect("replace")
    };
    let generation = rt.tables().snapshot().generation;
    wait_until("drops after the swap", || no_route() > 10_000);
    let rx_at_drop = g.rx_valid.get();
    std::thread::sleep(Duration::from_millis(200));
    assert!(g.rx_valid.get() - rx_at_drop < 100, "at most one burst in flight reaches the sink");
    assert_eq!(rt.tables().snapshot().generation, generation, "a route change publishes no table version");

    // Restore it: traffic flows again, no worker restarted.
    let polls = w.polls.get();
    rt.l3().replace_route(VrfId(0), net, 16, original).expect("restore");
    let drops_at_restore = no_route();
    wait_until("traffic after restore", || g.rx_valid.get() > rx_at_drop + 10_000);
    assert!(no_route() - drops_at_restore < 100);
    assert!(w.polls.get() > polls, "the same worker kept polling");
    let report = rt.stop().expect("stop");
    assert!(report.leaks().is_empty(), "{:?}", report.leaks());
    let gs = report.final_stats.generator.expect("gen");
    assert_eq!(gs.rx_invalid, 0);
}
