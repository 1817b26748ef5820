//! Property tests of the core's policies: the journal ring, the boot plan and the schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use asyncmd_core::journal::{records, Ring, UnitId, MIN_BUDGET};
use asyncmd_core::plan::{plan, Node, Problem, Pull};
use asyncmd_core::schedule::{after, first, Deadline, Spec};
use asyncmd_proto::Level;
use chrono::{NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Europe::Berlin;
use proptest::prelude::*;

/// What a ring holds, as (seq, message) pairs, oldest first.
fn held(ring: &Ring) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    ring.read(&mut ring.oldest(), &mut out, usize::MAX);
    records(&out).map(|r| (r.seq, r.msg.to_vec())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Never past its budget, the newest kept, sequence numbers contiguous, and a reader told
    /// exactly what it missed.
    #[test]
    fn the_ring_keeps_its_budget_and_the_newest(
        budget in MIN_BUDGET..3 * MIN_BUDGET,
        lens in proptest::collection::vec(0usize..3000, 1..400),
        reader_at in 0usize..400,
    ) {
        let mut ring = Ring::new(budget);
        let mut reader = None;
        for (i, &len) in lens.iter().enumerate() {
            if i == reader_at {
                reader = Some(ring.newest());
            }
            let msg = vec![b'a' + (i % 26) as u8; len];
            let seq = ring.push(i as i64, i as u64, UnitId(0), Level::Info, &msg);
            prop_assert_eq!(seq, i as u64);
            prop_assert_eq!(ring.capacity(), budget.max(MIN_BUDGET));
            let h = held(&ring);
            let bytes: usize = h.iter().map(|(_, m)| m.len() + 32).sum();
            prop_assert!(bytes <= ring.capacity(), "{} bytes in a {} ring", bytes, ring.capacity());
            // The newest is always held, truncated at most to what one record may hold.
            let (last_seq, last) = h.last().unwrap();
            prop_assert_eq!(*last_seq, i as u64);
            prop_assert_eq!(last.len(), len.min(ring.max_message()));
            for w in h.windows(2) {
                prop_assert_eq!(w[0].0 + 1, w[1].0);
            }
            prop_assert_eq!(h[0].0, ring.first_seq());
            prop_assert_eq!(h.len(), ring.len());
        }
        if let Some(mut cursor) = reader {
            let wanted_from = cursor.seq();
            let mut out = Vec::new();
            let got = ring.read(&mut cursor, &mut out, usize::MAX);
            prop_assert_eq!(got.missed, ring.first_seq().saturating_sub(wanted_from));
            prop_assert_eq!(got.missed + got.copied as u64, lens.len() as u64 - wanted_from);
            prop_assert_eq!(cursor.seq(), ring.next_seq());
        }
    }
}

/// A random graph of `n` units: each may require or order itself after any other.
fn graph() -> impl Strategy<Value = Vec<Node>> {
    (1usize..30).prop_flat_map(|n| {
        let edges = proptest::collection::vec((0..n, 0..n, any::<bool>()), 0..n * 2);
        let core = proptest::collection::vec(any::<bool>(), n);
        let prio = proptest::collection::vec(-3i32..3, n);
        (Just(n), edges, core, prio).prop_map(|(n, edges, core, prio)| {
            let mut nodes: Vec<Node> = (0..n)
                .map(|i| Node {
                    name: format!("u{i}"),
                    core: core[i],
                    priority: prio[i],
                    enabled: true,
                    ..Default::default()
                })
                .collect();
            for (a, b, hard) in edges {
                let dep = format!("u{b}");
                if hard {
                    nodes[a].requires.push(dep);
                } else {
                    nodes[a].after.push(dep);
                }
            }
            nodes
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every `requires`/`after` edge between planned units is respected, core units come first,
    /// and every unit on a cycle is refused with the cycle named.
    #[test]
    fn the_plan_respects_every_edge_and_names_cycles(nodes in graph()) {
        let wanted: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let p = plan(&nodes, &wanted, Pull::Enabled);
        let pos: BTreeMap<&str, usize> = p.order().enumerate().map(|(i, n)| (n, i)).collect();
        // Every unit is either planned or refused, never both.
        for n in &nodes {
            prop_assert!(pos.contains_key(n.name.as_str()) != p.problems.contains_key(&n.name));
        }
        for n in &nodes {
            let Some(&me) = pos.get(n.name.as_str()) else { continue };
            for r in &n.requires {
                let d = pos.get(r.as_str());
                prop_assert!(d.is_some_and(|&d| d < me), "{} requires {} but runs first", n.name, r);
            }
            for a in &n.after {
                if let Some(&d) = pos.get(a.as_str()) {
                    prop_assert!(d < me, "{} is after {} but runs first", n.name, a);
                }
            }
        }
        let steps: Vec<bool> = p.steps.iter().map(|s| s.core).collect();
        prop_assert!(steps.windows(2).all(|w| w[0] || !w[1]), "core first: {:?}", steps);
        // A unit that can reach itself by edges is on a cycle: it never starts, and a unit
        // refused for a cycle names one that really is a cycle of the graph.
        let index: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        // A core unit that waits for a non-core one is refused before cycles are looked for,
        // so it breaks the cycles it is on: walk the graph without those.
        let refused_first = |n: &str| matches!(p.problems.get(n), Some(Problem::CoreWaitsForNonCore(_)));
        let succ = |n: &str| -> Vec<String> {
            let nd = index[n];
            nd.requires
                .iter()
                .chain(&nd.after)
                .filter(|m| !refused_first(m))
                .cloned()
                .collect()
        };
        let reach = |from: &str| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut stack = succ(from);
            while let Some(m) = stack.pop() {
                if seen.insert(m.clone()) {
                    stack.extend(succ(&m));
                }
            }
            seen
        };
        for n in &nodes {
            let seen = reach(&n.name);
            if seen.contains(&n.name) && !refused_first(&n.name) {
                prop_assert!(!pos.contains_key(n.name.as_str()), "{} is on a cycle", n.name);
            }
            if let Some(Problem::Cycle(c)) = p.problems.get(&n.name) {
                // The cycle named runs through the unit's own knot: each of its units and this
                // one reach each other.
                for u in c {
                    prop_assert!(seen.contains(u) && reach(u).contains(&n.name), "{} not in {}'s knot", u, n.name);
                }
                for (i, u) in c.iter().enumerate() {
                    let next = &c[(i + 1) % c.len()];
                    prop_assert!(succ(u).contains(next), "{} -> {} is not an edge", u, next);
                }
            }
        }
    }

    /// `every` keeps absolute deadlines: after 10,000 periods, each run on time or late, the due
    /// time is exactly first + 10,000 periods, on both clocks.
    #[test]
    fn every_does_not_drift_over_ten_thousand_periods(
        period_ms in 1u64..100_000,
        lateness in proptest::collection::vec(0u64..1000, 16),
    ) {
        let period = Duration::from_millis(period_ms);
        let spec = Spec::new(None, Some(period), None).unwrap();
        let mut wall = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let mut mono = 1_000_000u64;
        let mut d = Deadline::new(spec, &wall, mono);
        let start = *d.due().unwrap();
        for k in 0..10_000u64 {
            let wait = d.wait(&wall, mono).unwrap();
            // Run a little late (less than a period), as a loaded machine does.
            let late = lateness[(k % 16) as usize] * period_ms; // µs
            let step = wait.as_micros() as u64 + late.min(period_ms * 1000 - 1);
            mono += step;
            wall += chrono::Duration::microseconds(step as i64);
            prop_assert_eq!(d.wait(&wall, mono), Some(Duration::ZERO));
            d.advance(&wall, mono);
        }
        let expected = start + chrono::Duration::milliseconds((period_ms * 10_000) as i64);
        prop_assert_eq!(*d.due().unwrap(), expected);
    }

    /// A daily `at` across any day of the year in a zone with DST runs once a day, at its time
    /// or, on the day the clock skips it, at the first minute after the gap.
    #[test]
    fn daily_at_runs_once_a_day_across_dst(
        day in 0i64..365,
        h in 0u32..24,
        m in 0u32..60,
    ) {
        let t = NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let spec = Spec::new(None, None, Some(&t.format("%H:%M").to_string())).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(day);
        let now = Berlin.from_local_datetime(&date.and_hms_opt(12, 0, 0).unwrap()).earliest().unwrap();
        let mut due = first(&spec, &now).unwrap();
        for _ in 0..3 {
            let next = after(&spec, &due, &due).unwrap();
            prop_assert_eq!(next.date_naive(), due.date_naive().succ_opt().unwrap());
            let local = next.time();
            prop_assert!(
                local == t || (local > t && local.hour() <= t.hour() + 1 && Berlin
                    .from_local_datetime(&next.date_naive().and_time(t))
                    .single()
                    .is_none()),
                "{} for {}", next, t
            );
            due = next;
        }
    }
}
