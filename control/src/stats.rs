//! The daemon's compact live stats line and final summary.

use dataplane::runtime::{StatsSnapshot, StopReport};
use std::collections::BTreeMap;
use std::fmt::Write;

fn rate(n: u64, secs: f64) -> String {
    let r = n as f64 / secs.max(1e-9);
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn drops(s: &StatsSnapshot) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for w in &s.workers {
        for (name, n) in &w.drops {
            *m.entry(*name).or_insert(0) += n;
        }
    }
    for p in &s.ports {
        for q in &p.rx {
            for (name, n) in &q.queue.drops {
                *m.entry(*name).or_insert(0) += n;
            }
        }
        for q in &p.tx {
            for (name, n) in &q.drops {
                *m.entry(*name).or_insert(0) += n;
            }
        }
    }
    m.retain(|_, n| *n > 0);
    m
}

/// One line: packets/s in and out per port, drops/s by reason, and the
/// generator's view (when running), between two snapshots `secs` apart.
pub fn line(prev: &StatsSnapshot, cur: &StatsSnapshot, secs: f64, uptime: f64) -> String {
    let mut s = format!("[{uptime:>5.0}s]");
    for (p, q) in cur.ports.iter().zip(&prev.ports) {
        let _ = write!(
            s,
            " {} {} in {} out {} pps |",
            p.info.name,
            if p.link.up { "up" } else { "DOWN" },
            rate(p.rx_packets() - q.rx_packets(), secs),
            rate(p.tx_packets() - q.tx_packets(), secs),
        );
    }
    let (d1, d0) = (drops(cur), drops(prev));
    let mut dl: Vec<String> = d1
        .iter()
        .filter_map(|(k, v)| {
            let d = v - d0.get(k).copied().unwrap_or(0);
            (d > 0).then(|| format!("{k}={}/s", rate(d, secs)))
        })
        .collect();
    if dl.is_empty() {
        dl.push("none".into());
    }
    let _ = write!(s, " drops {}", dl.join(" "));
    if let Some(n) = &cur.nat {
        let created = |n: &dataplane::runtime::NatSnapshot| {
            n.counters.iter().find(|c| c.0 == "sessions_created").map_or(0, |c| c.1)
        };
        let new = created(n).saturating_sub(prev.nat.as_ref().map_or(0, created));
        let _ = write!(s, " | nat {} sessions, {} new/s", n.live_sessions, rate(new, secs));
    }
    if let (Some(g), Some(g0)) = (&cur.generator, &prev.generator) {
        let rx = g.rx_valid - g0.rx_valid;
        let lat = if rx > 0 {
            let hz = dataplane::tsc::hz() as f64;
            format!(" lat {:.1}us", (g.latency_sum - g0.latency_sum) as f64 / rx as f64 / hz * 1e6)
        } else {
            String::new()
        };
        let _ = write!(s, " | gen sent {} recv {} pps{lat}", rate(g.tx_packets - g0.tx_packets, secs), rate(rx, secs));
    }
    s
}

/// The summary printed at exit.
pub fn summary(r: &StopReport, secs: f64) -> String {
    let f = &r.final_stats;
    let mut s = String::new();
    let _ = writeln!(s, "summary after {secs:.1}s:");
    for p in &f.ports {
        let _ = writeln!(
            s,
            "  port {:<8} {} rx {} pkts, tx {} pkts, driver drops {}",
            p.info.name,
            p.info.driver,
            p.rx_packets(),
            p.tx_packets(),
            p.driver_drops()
        );
    }
    for w in &f.workers {
        let cpp = if w.rx_packets > 0 { w.busy_cycles as f64 / w.rx_packets as f64 } else { 0.0 };
        let _ = writeln!(
            s,
            "  worker {} (core {}) rx {} tx {} pkts, {:.0} cycles/pkt, drops {:?}, punts {:?}, answered {:?}",
            w.id,
            w.core.map_or("any".to_string(), |c| c.to_string()),
            w.rx_packets,
            w.tx_packets,
            cpp,
            w.drops,
            w.punts,
            w.local
        );
    }
    if let Some(g) = &f.generator {
        let _ = writeln!(
            s,
            "  generator sent {} (wire full {}), received {} ({} valid, {} invalid)",
            g.tx_packets, g.tx_full, g.rx_packets, g.rx_valid, g.rx_invalid
        );
    }
    let leaks = r.leaks();
    let total: u64 = r.pools.iter().map(|p| p.0.buffers as u64).sum();
    if leaks.is_empty() {
        let _ = write!(s, "  page pools: all {total} buffers of {} pools returned", r.pools.len());
    } else {
        let _ = write!(s, "  page pools: BUFFERS MISSING: {}", leaks.join("; "));
    }
    s
}

/// NAT sessions and counters, if NAT is on: `nat: 1024 live sessions of
/// 1048576 (100 B each); sessions_created 1024, translated 5000000, ...`.
pub fn nat_line(rt: &dataplane::runtime::Runtime) -> Option<String> {
    let nat = rt.nat();
    let t = nat.table()?;
    let now = dataplane::tsc::secs(dataplane::tsc::now()) as u32;
    let st = t.stats(now);
    let states: Vec<String> =
        st.by_state.iter().filter(|s| s.1 > 0).map(|(s, n)| format!("{} {n}", s.name())).collect();
    let counters: Vec<String> = nat.counters().iter().map(|(k, v)| format!("{k} {v}")).collect();
    Some(format!(
        "nat: {} live sessions of {} ({} B each){}{}; {}",
        st.live,
        st.capacity,
        t.bytes() / st.capacity.max(1),
        if states.is_empty() { "" } else { ": " },
        states.join(", "),
        counters.join(", ")
    ))
}
