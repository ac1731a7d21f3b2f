//! What a cell costs besides time (issue 28): how many times the disk was asked to make data
//! durable, and how much the process allocated, over the clocked part of the cell.
//!
//! - **Syncs**: the kernel's own count of `fdatasync`, `fsync` and `msync` calls (the syscall
//!   tracepoints, through `perf_event_open`, one counter per CPU). The count is machine-wide, so
//!   another process syncing meanwhile would add to it; the benchmarks print how busy other
//!   processes were. Counting needs tracefs and permission to open tracepoints (root, or
//!   `perf_event_paranoid` <= -1); without them the column reads `-`. Both peers' syncs are
//!   counted alike: StemeDB's journal and LMDB's, SQLite's WAL.
//! - **Allocations**: a counting global allocator ([`ALLOCATOR`], registered by the benchmark
//!   binaries that print it) counts every allocation and reallocation and the bytes asked for,
//!   on every thread of the process. The counter costs an atomic add per call, alike for both
//!   peers.

use std::alloc::System;

use perf_event_open::config::{Cpu, Opts, Proc};
use perf_event_open::count::Counter;
use perf_event_open::event::tp::Tracepoint;
use stats_alloc::{Region, StatsAlloc};

/// The counting allocator. A benchmark registers it with
/// `#[global_allocator] static GLOBAL: &StatsAlloc<System> = &common::meter::ALLOCATOR;`.
pub static ALLOCATOR: StatsAlloc<System> = StatsAlloc::system();

/// The syscalls that make written data durable.
const SYNC_SYSCALLS: [&str; 3] = ["sys_enter_fdatasync", "sys_enter_fsync", "sys_enter_msync"];

/// Where tracefs is mounted, newer kernels first.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// A running measurement; [`stop`](Self::stop) it at the end of the clocked part.
pub struct Meter {
    syncs: Option<Vec<Counter>>,
    allocations: Region<'static, System>,
}

/// What a cell cost: syncs (if they could be counted), allocations and bytes allocated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metered {
    pub syncs: Option<u64>,
    pub allocations: u64,
    pub bytes: u64,
}

impl Metered {
    /// Per operation, for `ops` operations: (syncs, allocations, bytes).
    pub fn per(&self, ops: usize) -> (Option<f64>, f64, f64) {
        let ops = ops.max(1) as f64;
        let syncs = self.syncs.map(|s| s as f64 / ops);
        (syncs, self.allocations as f64 / ops, self.bytes as f64 / ops)
    }
}

impl Meter {
    /// Starts counting.
    pub fn start() -> Self {
        let syncs = sync_counters();
        if let Some(counters) = &syncs {
            for counter in counters {
                counter.enable().expect("enable a sync counter");
            }
        }
        Self {
            syncs,
            allocations: Region::new(&ALLOCATOR),
        }
    }

    /// Stops counting; returns what was counted.
    pub fn stop(self) -> Metered {
        let change = self.allocations.change();
        let syncs = self.syncs.map(|counters| {
            counters
                .iter()
                .map(|c| {
                    c.disable().expect("disable a sync counter");
                    c.stat().expect("read a sync counter").count
                })
                .sum()
        });
        Metered {
            syncs,
            allocations: (change.allocations + change.reallocations) as u64,
            bytes: (change.bytes_allocated + change.bytes_reallocated.max(0) as usize) as u64,
        }
    }
}

/// One counter per sync syscall per CPU, or `None` if the machine does not let us count.
fn sync_counters() -> Option<Vec<Counter>> {
    let cpus = std::thread::available_parallelism().ok()?.get();
    let mut counters = Vec::new();
    for syscall in SYNC_SYSCALLS {
        let id = TRACEFS.iter().find_map(|root| {
            let path = format!("{root}/events/syscalls/{syscall}/id");
            std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok()
        })?;
        for cpu in 0..cpus {
            let target = (Proc::ALL, Cpu(cpu as u32));
            counters.push(Counter::new(Tracepoint { id }, target, Opts::default()).ok()?);
        }
    }
    Some(counters)
}

/// Formats a per-operation count, `-` when it could not be counted.
pub fn show(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}
