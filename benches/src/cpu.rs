//! CPU time of this process's threads by name, from `/proc/self/task` (Linux).

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Seconds of user plus system CPU used so far by threads whose name starts with `prefix`.
pub fn thread_cpu_seconds(prefix: &str) -> f64 {
    per_thread_cpu_seconds(prefix).values().sum()
}

/// Seconds of user plus system CPU used so far by each thread (by thread id) whose name starts
/// with `prefix`.
pub fn per_thread_cpu_seconds(prefix: &str) -> std::collections::BTreeMap<u64, f64> {
    let mut threads = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let Some(id) = task.file_name().to_str().and_then(|id| id.parse().ok()) else {
            continue;
        };
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3; utime and stime are 14 and 15.
        let Some(after_name) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let parse = |index: usize| {
            fields
                .get(index)
                .and_then(|field| field.parse::<u64>().ok())
                .unwrap_or(0)
        };
        threads.insert(id, (parse(11) + parse(12)) as f64 / TICKS_PER_SECOND);
    }
    threads
}
