//! Splitting one load over N generators (`run --shard I/N`) and starting them together
//! (`run --start-at`).
//!
//! A shard's share of every integer total (flows, workers, `unique` data rows, the
//! open-loop cap) is `total / N`, plus one for the first `total % N` shards, so the N shares
//! always add up to the total asked for: nothing is lost to rounding and nothing is run
//! twice. Rates are divided exactly (`R / N`; a sum of N Poisson processes at `R / N` is one
//! at `R`). `{{seq}}` is strided: flow `k` of shard `i` is number `k·N + i`, so the shards'
//! numbers are disjoint and, for a flow count, cover `0..TOTAL` exactly.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::{LoadModel, Plan, Stage};

/// Which share of the load this generator runs: shard `index` (0-based, as Kubernetes'
/// `JOB_COMPLETION_INDEX`) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// `--shard`'s value before the environment is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// `I/N`.
    Fixed(Shard),
    /// `auto`: [`INDEX_VAR`] and [`COUNT_VAR`] from the environment.
    Auto,
}

/// Set by Kubernetes in every pod of an Indexed Job: the pod's index, 0-based.
pub const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";
/// The number of shards for `--shard auto`. Kubernetes does not expose a Job's
/// `completions` to its pods, so the manifest sets this from the same value.
pub const COUNT_VAR: &str = "AUTHBENCH_SHARDS";

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `--shard`: `I/N` (0 ≤ I < N) or `auto`.
pub fn parse_shard(s: &str) -> Result<ShardSpec, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(ShardSpec::Auto);
    }
    let (i, n) = t.split_once('/').ok_or_else(|| {
        format!("'{s}' is not a shard: use I/N (e.g. 0/4, the first of four) or auto")
    })?;
    Shard::new(i.trim(), n.trim()).map(ShardSpec::Fixed)
}

impl Shard {
    fn new(index: &str, count: &str) -> Result<Shard, String> {
        let count: u64 = count
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("shard count '{count}' is not a whole number ≥ 1"))?;
        let index: u64 = index
            .parse()
            .map_err(|_| format!("shard index '{index}' is not a whole number"))?;
        if index >= count {
            return Err(format!(
                "shard {index}/{count}: indexes are 0-based, 0 to {} for {count} shards",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// `--shard auto`: the shard from [`INDEX_VAR`] and [`COUNT_VAR`], read through `var`
    /// (the process environment in the CLI, a map in tests).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let index = var(INDEX_VAR).ok_or_else(|| {
            format!("--shard auto reads {INDEX_VAR} (set by a Kubernetes Indexed Job), which is not set: give --shard I/N instead")
        })?;
        let count = var(COUNT_VAR).ok_or_else(|| {
            format!("--shard auto reads the number of shards from {COUNT_VAR} (set it to the Job's completions), which is not set")
        })?;
        Shard::new(index.trim(), count.trim()).map_err(|e| format!("{INDEX_VAR}/{COUNT_VAR}: {e}"))
    }

    /// This shard's share of an integer total.
    pub fn share(&self, total: u64) -> u64 {
        total / self.count + u64::from(self.index < total % self.count)
    }

    /// Where this shard's share starts when the total is laid out in shard order (the sum
    /// of the shares of the shards before it).
    pub fn offset(&self, total: u64) -> u64 {
        self.index * (total / self.count) + self.index.min(total % self.count)
    }

    /// The global number of this shard's `k`-th flow (`{{seq}}`).
    pub fn seq(&self, k: u64) -> u64 {
        k.saturating_mul(self.count).saturating_add(self.index)
    }

    /// This shard's share of a plan: workers and flow counts split as integers, rates
    /// divided, durations and the warm-up unchanged. Fails when the share would run
    /// nothing (fewer flows or workers than shards).
    pub fn split_plan(&self, plan: &Plan) -> Result<Plan, String> {
        let mut p = plan.clone();
        let closed = matches!(plan.model, LoadModel::Closed);
        p.stages = plan
            .stages
            .iter()
            .map(|s| Stage {
                level: if closed {
                    self.share(s.level as u64) as f64
                } else {
                    s.level / self.count as f64
                },
                duration: s.duration,
            })
            .collect();
        if let LoadModel::Open {
            arrival,
            max_in_flight,
        } = plan.model
        {
            p.model = LoadModel::Open {
                arrival,
                max_in_flight: (self.share(max_in_flight as u64) as usize).max(1),
            };
        }
        if let Some(n) = plan.max_flows {
            p.max_flows = Some(self.share(n));
            if n / self.count == 0 {
                return Err(format!(
                    "{n} flows cannot be split over {} shards: every shard needs at least one",
                    self.count
                ));
            }
        }
        // Every shard refuses alike (the last one gets the smallest share): a split that
        // leaves one generator idle would fail one pod of a Job and run the others.
        if closed && (plan.peak() as u64) / self.count == 0 {
            return Err(format!(
                "{} workers cannot be split over {} shards: every shard needs at least one (use at most {} shards, or more --concurrency)",
                plan.peak(),
                self.count,
                plan.peak()
            ));
        }
        Ok(p)
    }
}

/// When a run's measured load began, as its report records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// When the measured load began (RFC 3339, UTC); in a merge, the earliest input's.
    pub actual: String,
    /// `--start-at`: when it was to begin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<String>,
    /// In a run with `--start-at`: how late it began, in milliseconds. In a merge: the
    /// latest input's start minus the earliest's (the generators' start skew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_ms: Option<f64>,
}

impl Start {
    /// The record of a run that began at `actual`, planned for `planned`.
    pub fn of(actual: DateTime<Utc>, planned: Option<DateTime<Utc>>) -> Start {
        Start {
            actual: stamp(actual),
            planned: planned.map(stamp),
            skew_ms: planned.map(|p| ms(actual - p)),
        }
    }

    /// [`Start::actual`] as a time (`None` if a hand-edited report mangled it).
    pub fn actual_time(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.actual)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The warning a late start deserves, if it was later than [`START_SKEW_WARN`].
    pub fn late_warning(&self) -> Option<String> {
        let skew = self.skew_ms?;
        (skew.abs() > START_SKEW_WARN.as_secs_f64() * 1e3).then(|| {
            format!(
                "the load began {:.2} s {} the planned start (--start-at {}): generators started together did not fully overlap (a calibration or set-up that ran past the start, or a pod that started late)",
                skew.abs() / 1e3,
                if skew > 0.0 { "after" } else { "before" },
                self.planned.as_deref().unwrap_or("?")
            )
        })
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-11-30T12:00:00.123Z`.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A signed chrono duration in milliseconds.
pub fn ms(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3
}

/// A start later than this after `--start-at` is reported: the generators' loads did not
/// fully overlap.
pub const START_SKEW_WARN: Duration = Duration::from_secs(1);

/// `--start-at` may be at most this far ahead: beyond it, a mistyped date (a day off, a
/// time zone) is likelier than a plan, and the pods would sit idle holding their resources.
pub const START_AT_MAX_AHEAD: Duration = Duration::from_secs(3600);

/// Parses `--start-at`: an RFC 3339 time (`2026-11-30T12:00:00Z`) or `+DURATION` from
/// `now` (`+30s`). It must be in the future and at most [`START_AT_MAX_AHEAD`] ahead.
pub fn parse_start_at(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    let at = if let Some(rel) = t.strip_prefix('+') {
        let d = crate::units::parse_duration(rel).map_err(|e| format!("--start-at {e}"))?;
        now + chrono::Duration::from_std(d).map_err(|_| format!("--start-at '{s}' is too far"))?
    } else {
        DateTime::parse_from_rfc3339(t)
            .map_err(|e| {
                format!("--start-at '{s}' is neither an RFC 3339 time (2026-11-30T12:00:00Z) nor +DURATION (+30s): {e}")
            })?
            .with_timezone(&Utc)
    };
    if at <= now {
        return Err(format!(
            "--start-at {} is {} in the past: the load would not start together with the other generators (is this machine's clock in sync? is the time in UTC?)",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            human((now - at).to_std().unwrap_or_default())
        ));
    }
    let ahead = (at - now).to_std().unwrap_or_default();
    if ahead > START_AT_MAX_AHEAD {
        return Err(format!(
            "--start-at {} is {} ahead, more than the {} allowed: check the date and the time zone",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            human(ahead),
            human(START_AT_MAX_AHEAD)
        ));
    }
    Ok(at)
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Arrival;
    use proptest::prelude::*;

    fn shards(n: u64) -> impl Iterator<Item = Shard> {
        (0..n).map(move |index| Shard { index, count: n })
    }

    #[test]
    fn parses_fixed_and_auto() {
        assert_eq!(
            parse_shard("1/4"),
            Ok(ShardSpec::Fixed(Shard { index: 1, count: 4 }))
        );
        assert_eq!(parse_shard(" auto "), Ok(ShardSpec::Auto));
        for bad in ["4/4", "1", "a/4", "1/0", "-1/4", "1/b", ""] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert!(parse_shard("4/4").unwrap_err().contains("0-based"));
    }

    #[test]
    fn auto_reads_the_indexed_job_environment() {
        let env = |i: Option<&str>, n: Option<&str>| {
            let (i, n) = (i.map(String::from), n.map(String::from));
            move |k: &str| match k {
                INDEX_VAR => i.clone(),
                COUNT_VAR => n.clone(),
                _ => None,
            }
        };
        assert_eq!(
            Shard::from_env(env(Some("2"), Some("3"))),
            Ok(Shard { index: 2, count: 3 })
        );
        assert!(Shard::from_env(env(None, Some("3")))
            .unwrap_err()
            .contains(INDEX_VAR));
        assert!(Shard::from_env(env(Some("1"), None))
            .unwrap_err()
            .contains(COUNT_VAR));
        assert!(Shard::from_env(env(Some("3"), Some("3"))).is_err());
    }

    proptest! {
        #[test]
        fn shares_add_up_and_offsets_tile(total in 0u64..1_000_000, n in 1u64..200) {
            let mut sum = 0;
            for s in shards(n) {
                prop_assert_eq!(s.offset(total), sum);
                let share = s.share(total);
                prop_assert!(share == total / n || share == total / n + 1);
                sum += share;
            }
            prop_assert_eq!(sum, total);
        }

        #[test]
        fn strided_seqs_are_disjoint_and_cover_the_flows(total in 1u64..3000, n in 1u64..50) {
            let mut seen = vec![false; total as usize];
            for s in shards(n) {
                for k in 0..s.share(total) {
                    let q = s.seq(k) as usize;
                    prop_assert!(q < seen.len(), "seq {} past {}", q, total);
                    prop_assert!(!seen[q], "seq {} twice", q);
                    seen[q] = true;
                }
            }
            prop_assert!(seen.iter().all(|b| *b));
        }

        #[test]
        fn plans_split_exactly(
            flows in 1u64..100_000,
            workers in 1u64..5_000,
            rate in 0.5f64..50_000.0,
            cap in 1u64..10_000,
            levels in proptest::collection::vec(0u64..500, 1..5),
            n in 1u64..64,
        ) {
            prop_assume!(n <= flows.min(workers).min(*levels.iter().max().unwrap()).max(1));
            let secs = Duration::from_secs(10);
            // Closed loop with a flow count.
            let closed = Plan::closed(workers as usize, flows);
            let parts: Vec<Plan> = shards(n).map(|s| s.split_plan(&closed).unwrap()).collect();
            prop_assert_eq!(parts.iter().map(|p| p.max_flows.unwrap()).sum::<u64>(), flows);
            prop_assert_eq!(parts.iter().map(|p| p.peak() as u64).sum::<u64>(), workers);
            // Open loop: rate, cap and flows.
            let open = Plan {
                model: LoadModel::Open { arrival: Arrival::Poisson, max_in_flight: cap as usize },
                stages: vec![Stage { level: rate, duration: Duration::MAX }],
                max_flows: Some(flows),
                duration: None,
                warmup: Duration::ZERO,
            };
            let parts: Vec<Plan> = shards(n).map(|s| s.split_plan(&open).unwrap()).collect();
            let rates: f64 = parts.iter().map(|p| p.peak()).sum();
            prop_assert!((rates - rate).abs() <= rate * 1e-9, "{} vs {}", rates, rate);
            prop_assert_eq!(parts.iter().map(|p| p.max_flows.unwrap()).sum::<u64>(), flows);
            if cap >= n {
                let caps: u64 = parts.iter().map(|p| match p.model {
                    LoadModel::Open { max_in_flight, .. } => max_in_flight as u64,
                    LoadModel::Closed => 0,
                }).sum();
                prop_assert_eq!(caps, cap);
            }
            // Worker stages: every stage's levels add up, durations unchanged.
            let staged = Plan {
                model: LoadModel::Closed,
                stages: levels.iter().map(|l| Stage { level: *l as f64, duration: secs }).collect(),
                max_flows: None,
                duration: None,
                warmup: Duration::ZERO,
            };
            let parts: Vec<Plan> = shards(n).map(|s| s.split_plan(&staged).unwrap()).collect();
            for (i, l) in levels.iter().enumerate() {
                prop_assert_eq!(parts.iter().map(|p| p.stages[i].level as u64).sum::<u64>(), *l);
                prop_assert!(parts.iter().all(|p| p.stages[i].duration == secs));
            }
        }
    }

    #[test]
    fn a_share_that_would_run_nothing_is_refused() {
        let s = Shard { index: 3, count: 4 };
        let e = s.split_plan(&Plan::closed(3, 100)).unwrap_err();
        assert!(e.contains("3 workers cannot be split over 4 shards"), "{e}");
        let e = s.split_plan(&Plan::closed(8, 3)).unwrap_err();
        assert!(e.contains("3 flows"), "{e}");
        // Every shard refuses, not only the one that would get nothing.
        let first = Shard { index: 0, count: 4 };
        assert!(first.split_plan(&Plan::closed(8, 3)).is_err());
        assert_eq!(
            first.split_plan(&Plan::closed(8, 4)).unwrap().max_flows,
            Some(1)
        );
    }

    #[test]
    fn start_at_parses_absolute_and_relative_times() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_start_at("+30s", now).unwrap(),
            now + chrono::Duration::seconds(30)
        );
        // 13:00 at UTC+1 is 12:00Z: now, so not in the future.
        let e = parse_start_at("2026-11-30T13:00:00+01:00", now).unwrap_err();
        assert!(e.contains("in the past"), "{e}");
        assert_eq!(
            parse_start_at("2026-11-30T13:05:00+01:00", now).unwrap(),
            now + chrono::Duration::minutes(5)
        );
        let e = parse_start_at("2026-12-01T12:00:00Z", now).unwrap_err();
        assert!(e.contains("ahead"), "{e}");
        let e = parse_start_at("11:00", now).unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
        assert!(parse_start_at("+0s", now).is_err());
        assert!(parse_start_at("+2h", now).unwrap_err().contains("ahead"));
    }
}
