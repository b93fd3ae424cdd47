//! What a server process (and its children: Apache forks workers) costs: CPU seconds
//! from /proc/PID/stat, and peak resident memory from VmHWM, reset before a workload by
//! writing 5 to /proc/PID/clear_refs (needs root or the same user).

use std::collections::HashMap;
use std::fs;

pub struct Server {
    roots: Vec<u32>,
    ticks_per_second: f64,
}

impl Server {
    pub fn new(roots: Vec<u32>) -> Self {
        let ticks_per_second = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0);
        Self {
            roots,
            ticks_per_second,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The roots and every process below them.
    fn processes(&self) -> Vec<u32> {
        let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
        if let Ok(entries) = fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Some(fields) = stat_fields(pid)
                    && let Some(ppid) = fields.get(1).and_then(|f| f.parse::<u32>().ok())
                {
                    parents.entry(ppid).or_default().push(pid);
                }
            }
        }
        let mut out = Vec::new();
        let mut queue = self.roots.clone();
        while let Some(pid) = queue.pop() {
            out.push(pid);
            if let Some(children) = parents.get(&pid) {
                queue.extend(children);
            }
        }
        out
    }

    /// CPU seconds used so far: live processes' own time, plus what the roots collected
    /// from children that have exited.
    pub fn cpu_seconds(&self) -> f64 {
        let mut ticks = 0u64;
        for pid in self.processes() {
            let Some(fields) = stat_fields(pid) else {
                continue;
            };
            // After the command: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            ticks += field(11) + field(12);
            if self.roots.contains(&pid) {
                ticks += field(13) + field(14);
            }
        }
        ticks as f64 / self.ticks_per_second
    }

    /// Starts a new peak-memory measurement.
    pub fn reset_peak(&self) {
        for pid in self.processes() {
            let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
    }

    /// Sum of the processes' peak resident set since the reset, in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.processes()
            .into_iter()
            .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .sum::<u64>()
            * 1024
    }
}

/// The fields of /proc/PID/stat after the parenthesised command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}
