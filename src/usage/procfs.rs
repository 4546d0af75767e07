//! Reading `/proc` (Linux): the CPU time of this process's threads, the machine's CPU
//! counters (`/proc/stat`), and another process's CPU time, resident memory and thread
//! count. Every reader returns `None` where the file is missing or unreadable (another
//! OS, a process that has exited), so a figure is absent rather than guessed.

use std::collections::HashMap;

/// Clock ticks per second of the `/proc` CPU counters (`USER_HZ`): 100 on every Linux
/// architecture authbench builds for; asked of the system where possible.
fn user_hz() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// The fields of a `/proc/.../stat` line after the command name (which may hold spaces and
/// parentheses, so the line is split after its last `)`); `fields[0]` is field 3 (state).
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().collect())
}

/// CPU time (user + system) from a stat line, in seconds.
fn stat_cpu_s(text: &str) -> Option<f64> {
    let f = stat_fields(text)?;
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 here.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / user_hz())
}

/// One of this process's threads: seconds on a core, and seconds runnable (on a core or
/// waiting in a run queue for one). `schedstat` (nanoseconds) has both where the kernel
/// keeps it; otherwise `stat` (clock ticks) has the first, and runnable is taken as equal.
fn thread_times(tid: i32) -> Option<ThreadTimes> {
    if let Ok(t) = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")) {
        let mut v = t.split_whitespace().map(|x| x.parse::<u64>().ok());
        if let (Some(Some(run)), Some(Some(wait))) = (v.next(), v.next()) {
            return Some(ThreadTimes {
                cpu_s: run as f64 / 1e9,
                runnable_s: (run + wait) as f64 / 1e9,
            });
        }
    }
    let cpu_s = stat_cpu_s(&std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?)?;
    Some(ThreadTimes {
        cpu_s,
        runnable_s: cpu_s,
    })
}

/// A thread's cumulative times, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadTimes {
    pub cpu_s: f64,
    pub runnable_s: f64,
}

/// The times of every thread of this process, by thread id.
pub fn own_threads() -> HashMap<i32, ThreadTimes> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        if let Some(tid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            if let Some(s) = thread_times(tid) {
                out.insert(tid, s);
            }
        }
    }
    out
}

/// The id of the calling thread, where the OS has one.
pub fn current_tid() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        i32::try_from(tid).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The machine's CPU counters: (busy, total) clock ticks over all cores, and the number of
/// cores, from the first lines of `/proc/stat`. Idle and I/O wait are not busy.
pub fn machine() -> Option<(u64, u64, usize)> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_proc_stat(text: &str) -> Option<(u64, u64, usize)> {
    let mut lines = text.lines();
    let first = lines.next()?;
    let v: Vec<u64> = first
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    // already inside user and nice, so only the first eight add up to the total.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    let cores = lines
        .take_while(|l| l.starts_with("cpu"))
        .filter(|l| l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some((total - idle, total, cores.max(1)))
}

/// What one look at another process shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    /// CPU time of all its threads since it started, seconds.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    pub threads: u64,
}

/// CPU time, resident memory and threads of process `pid`; `None` if it is not there.
pub fn process(pid: u32) -> Option<ProcessSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_process(&stat, &status)
}

fn parse_process(stat: &str, status: &str) -> Option<ProcessSample> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(ProcessSample {
        cpu_s: stat_cpu_s(stat)?,
        // VmRSS is in kB; a kernel thread or a zombie has none.
        rss_bytes: field("VmRSS:").unwrap_or(0) * 1024,
        threads: field("Threads:").unwrap_or(0),
    })
}

/// A process counted as part of the server at one look.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub pid: u32,
    /// Its command name (`/proc/PID/stat`'s second field).
    pub name: String,
    pub sample: ProcessSample,
}

/// `roots` and all their descendants as they are now (children of children too), from the
/// parent of every process in `/proc`: a pre-fork server's master and its workers, including
/// workers it started since the last look. Processes that vanish while being read are left
/// out.
pub fn tree(roots: &[u32]) -> Vec<Member> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| stat_fields(&t)?.get(1)?.parse::<u32>().ok());
            if let Some(ppid) = parent {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut seen: Vec<u32> = Vec::new();
    let mut todo: Vec<u32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if seen.contains(&pid) {
            continue;
        }
        seen.push(pid);
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    seen.sort_unstable();
    seen.into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let name = stat
                .find('(')
                .zip(stat.rfind(')'))
                .map(|(a, b)| stat[a + 1..b].to_string())
                .unwrap_or_default();
            Some(Member {
                pid,
                name,
                sample: parse_process(&stat, &status)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_name() {
        let stat =
            "42 (a (b) c) R 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 1000 1000000 300 0";
        let status = "Name:\tx\nVmRSS:\t  2048 kB\nThreads:\t3\n";
        let p = parse_process(stat, status).unwrap();
        assert!((p.cpu_s - 300.0 / user_hz()).abs() < 1e-9);
        assert_eq!((p.rss_bytes, p.threads), (2048 * 1024, 3));
    }

    #[test]
    fn parses_proc_stat() {
        let t = "cpu  100 0 50 800 50 0 0 0 7 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n";
        assert_eq!(parse_proc_stat(t), Some((150, 1000, 2)));
    }

    #[test]
    fn a_tree_holds_the_children_started_since() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let members = tree(&[me]);
        let _ = child.kill();
        let _ = child.wait();
        let pids: Vec<u32> = members.iter().map(|m| m.pid).collect();
        assert!(pids.contains(&me) && pids.contains(&child.id()), "{pids:?}");
        assert!(members.iter().any(|m| m.name == "sleep"), "{members:?}");
    }

    #[test]
    fn reads_this_process() {
        if !std::path::Path::new("/proc/self/task").exists() {
            return;
        }
        let tid = current_tid().unwrap();
        assert!(own_threads().contains_key(&tid));
        let me = process(std::process::id()).unwrap();
        assert!(me.threads >= 1 && me.rss_bytes > 0, "{me:?}");
        assert!(machine().unwrap().2 >= 1);
    }
}
