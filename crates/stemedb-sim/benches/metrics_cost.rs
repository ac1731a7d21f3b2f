//! What recording metrics costs the ingest (issue 14): the StemeDB cell of the ingest
//! benchmark (`benches/ingest.rs`: signed assertions from 64 and 1,000 concurrent submitters,
//! durable, then indexed) with the Prometheus recorder on and off, in alternating rounds of one
//! run, and the ratio on/off (the median of the per-round ratios; the target is at least 0.95).
//!
//! **On** is what `stemedb serve` runs: the recorder of `stemedb_server::prometheus_recorder`
//! records every metric, and a scraper thread renders the exposition every second (more often
//! than a usual 5 to 15 s scrape interval, so the figure is pessimistic). **Off** hands out
//! no-op handles, which is what the `metrics` facade does with no recorder installed: a global
//! recorder can be installed once per process, so one that switches between the two stands in
//! for both, and both pay the same call into it.
//!
//! Run with `cargo bench --bench metrics_cost`. Environment: `STEMEDB_BENCH_ASSERTIONS`
//! (default 20,000), `STEMEDB_BENCH_ROUNDS` (default 9), `STEMEDB_BENCH_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../benches/common/mod.rs"]
mod common;
use common::assertions::{ingest_cell, shares, workload};
use common::{bench_dir, build_line, env_usize};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::PrometheusRecorder;

const SUBMITTERS: [usize; 2] = [64, 1000];
const ASSERTIONS_DEFAULT: usize = 20_000;
const ROUNDS_DEFAULT: usize = 9;
const SCRAPE_EVERY: Duration = Duration::from_secs(1);
const RATIO_TARGET: f64 = 0.95;

/// The Prometheus recorder while `on`, a no-op one otherwise.
struct Switch {
    on: AtomicBool,
    inner: PrometheusRecorder,
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let count = env_usize("STEMEDB_BENCH_ASSERTIONS").unwrap_or(ASSERTIONS_DEFAULT);
    let rounds = env_usize("STEMEDB_BENCH_ROUNDS").unwrap_or(ROUNDS_DEFAULT).max(1);
    let recorder = stemedb_server::prometheus_recorder();
    let handle = recorder.handle();
    let switch = Arc::new(Switch {
        on: AtomicBool::new(false),
        inner: recorder,
    });
    metrics::set_global_recorder(switch.clone()).expect("install the recorder");
    let scraping = Arc::new(AtomicBool::new(true));
    let scraper = {
        let (switch, scraping) = (switch.clone(), scraping.clone());
        std::thread::spawn(move || {
            let mut bytes = 0usize;
            while scraping.load(Ordering::Relaxed) {
                std::thread::sleep(SCRAPE_EVERY);
                if switch.on.load(Ordering::Relaxed) {
                    bytes = handle.render().len();
                }
            }
            bytes
        })
    };
    println!("{}", build_line());
    println!("metrics cost: {count} assertions a cell, {rounds} rounds, off and on alternating");
    let assertions = workload(count);
    for submitters in SUBMITTERS {
        let (mut ratios, mut off_rates, mut on_rates) = (Vec::new(), Vec::new(), Vec::new());
        let mut cpu_ratios = Vec::new();
        for round in 0..rounds {
            // Alternate which goes first, so neither always meets a warmer page cache.
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            let (mut rate, mut cpu) = ([0.0; 2], [0.0; 2]);
            for on in order {
                switch.on.store(on, Ordering::Relaxed);
                let result = ingest_cell(&bench_dir(), shares(&assertions, count, submitters));
                rate[usize::from(on)] = result.rate();
                cpu[usize::from(on)] = result.cpu_us();
            }
            switch.on.store(false, Ordering::Relaxed);
            println!(
                "  {submitters:>5} submitters, round {}: off {:>9.0}/s {:>5.1} µs CPU  on {:>9.0}/s {:>5.1} µs CPU  \
                 on/off {:.3}",
                round + 1,
                rate[0],
                cpu[0],
                rate[1],
                cpu[1],
                rate[1] / rate[0]
            );
            ratios.push(rate[1] / rate[0]);
            cpu_ratios.push(cpu[1] / cpu[0]);
            off_rates.push(rate[0]);
            on_rates.push(rate[1]);
        }
        let ratio = median(&mut ratios);
        println!(
            "{submitters:>5} submitters: median off {:.0}/s, on {:.0}/s; on/off (median of rounds) {ratio:.3} \
             (target >= {RATIO_TARGET}: {}); CPU per assertion on/off {:.3}",
            median(&mut off_rates),
            median(&mut on_rates),
            if ratio >= RATIO_TARGET { "met" } else { "MISSED" },
            median(&mut cpu_ratios),
        );
    }
    scraping.store(false, Ordering::Relaxed);
    let exposition = scraper.join().expect("scraper");
    println!("last exposition rendered while on: {exposition} bytes");
}
