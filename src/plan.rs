//! The load shape as data: closed loop (a number of workers) or open loop (an arrival
//! rate), in stages, bounded by a flow count and/or a duration, with a warm-up. Every
//! combination of flags becomes one [`Plan`], and the engine runs every plan through one
//! code path.

use std::fmt;
use std::time::Duration;

/// How new flows start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadModel {
    /// A fixed number of workers, each starting its next flow when its last one ends. The
    /// server's slowness slows the load down, so latency is the service time as seen by a
    /// patient user (coordinated omission is inherent; open loop avoids it).
    Closed,
    /// Flows arrive on a schedule whatever the server does; latency counts from when each
    /// flow *should* have started.
    Open {
        arrival: Arrival,
        /// At most this many flows in flight; arrivals beyond wait (and are counted late).
        max_in_flight: usize,
    },
}

/// The spacing of arrivals in open loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Exactly 1/rate apart.
    Constant,
    /// Exponentially distributed gaps with mean 1/rate (independent users).
    Poisson,
}

impl fmt::Display for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
        })
    }
}

/// One stage: a level (workers in closed loop, flows per second in open loop) held for a
/// duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub level: f64,
    pub duration: Duration,
}

/// Everything about the shape of the load.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub model: LoadModel,
    /// Levels over time. The last stage's level holds after its end until the run is bounded
    /// by `max_flows` or `duration`; with neither, the end of the last stage ends the run.
    pub stages: Vec<Stage>,
    /// Stop starting flows after this many (warm-up flows included).
    pub max_flows: Option<u64>,
    /// Stop starting flows after this long (warm-up included).
    pub duration: Option<Duration>,
    /// Flows that start during the warm-up run but are not measured.
    pub warmup: Duration,
}

impl Plan {
    /// A closed loop of `workers` running `flows` flows: the `run --flows N -c C` plan.
    pub fn closed(workers: usize, flows: u64) -> Plan {
        Plan {
            model: LoadModel::Closed,
            stages: vec![Stage {
                level: workers as f64,
                duration: Duration::MAX,
            }],
            max_flows: Some(flows),
            duration: None,
            warmup: Duration::ZERO,
        }
    }

    /// The level at `t` since the start (`None` once the plan is over in time).
    pub fn level_at(&self, t: Duration) -> Option<f64> {
        if self.duration.is_some_and(|d| t >= d) {
            return None;
        }
        let mut end = Duration::ZERO;
        for s in &self.stages {
            end = end.saturating_add(s.duration);
            if t < end {
                return Some(s.level);
            }
        }
        // Past the last stage: it holds only if something else bounds the run.
        if self.max_flows.is_some() || self.duration.is_some() {
            self.stages.last().map(|s| s.level)
        } else {
            None
        }
    }

    /// When the plan stops starting flows, if bounded in time.
    pub fn end(&self) -> Option<Duration> {
        let staged: Duration = self
            .stages
            .iter()
            .fold(Duration::ZERO, |a, s| a.saturating_add(s.duration));
        match (self.duration, self.max_flows) {
            (Some(d), _) => Some(d),
            (None, None) => Some(staged),
            (None, Some(_)) => None,
        }
    }

    /// The most workers or the highest rate of any stage.
    pub fn peak(&self) -> f64 {
        self.stages.iter().map(|s| s.level).fold(0.0, f64::max)
    }

    /// Flows the plan intends to start, when that is known in advance.
    pub fn planned_flows(&self) -> Option<u64> {
        if let Some(n) = self.max_flows {
            return Some(n);
        }
        match self.model {
            LoadModel::Open { .. } => {
                // Expected arrivals: the integral of the rate over the plan.
                let end = self.end()?;
                let mut t = Duration::ZERO;
                let mut n = 0.0;
                for s in &self.stages {
                    if t >= end {
                        break;
                    }
                    let d = s.duration.min(end - t);
                    n += s.level * d.as_secs_f64();
                    t = t.saturating_add(s.duration);
                }
                if t < end {
                    n += self.stages.last()?.level * (end - t).as_secs_f64();
                }
                Some(n.round() as u64)
            }
            LoadModel::Closed => None,
        }
    }

    /// "open loop, poisson arrivals at 10/s for 30s then 50/s for 60s", for reports.
    pub fn describe(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| {
                let level = match self.model {
                    LoadModel::Closed => format!("{} workers", s.level),
                    LoadModel::Open { .. } => format!("{}/s", s.level),
                };
                if s.duration == Duration::MAX {
                    level
                } else {
                    format!("{level} for {}", fmt_duration(s.duration))
                }
            })
            .collect();
        let mut out = match self.model {
            LoadModel::Closed => format!(
                "closed loop: {} (a worker starts its next flow when its last one ends)",
                stages.join(", then ")
            ),
            LoadModel::Open {
                arrival,
                max_in_flight,
            } => format!(
                "open loop: {arrival} arrivals at {}, at most {max_in_flight} in flight",
                stages.join(", then ")
            ),
        };
        if let Some(n) = self.max_flows {
            out.push_str(&format!("; up to {n} flows"));
        }
        if let Some(d) = self.duration {
            out.push_str(&format!("; for {}", fmt_duration(d)));
        }
        if !self.warmup.is_zero() {
            out.push_str(&format!(
                "; the first {} are warm-up, not measured",
                fmt_duration(self.warmup)
            ));
        }
        out
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 && s.fract() == 0.0 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Parses `--stages`: `10/s:30s,50/s:60s` (rates, open loop) or `10:30s,50:60s`
/// (workers, closed loop). Returns the stages and whether they are rates.
pub fn parse_stages(s: &str) -> Result<(Vec<Stage>, bool), String> {
    let mut out = Vec::new();
    let mut rates = None;
    for (i, part) in s.split(',').enumerate() {
        let part = part.trim();
        let (level, dur) = part.split_once(':').ok_or_else(|| {
            format!(
                "stage {} `{part}` is not LEVEL:DURATION (e.g. 10/s:30s or 20:60s)",
                i + 1
            )
        })?;
        let (level, is_rate) = match level.trim().strip_suffix("/s") {
            Some(r) => (r, true),
            None => (level.trim(), false),
        };
        if *rates.get_or_insert(is_rate) != is_rate {
            return Err(format!(
                "stage {} mixes rates (N/s) and worker counts (N): use one kind in all stages",
                i + 1
            ));
        }
        let level: f64 = level
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("stage {}: `{level}` is not a level (a number ≥ 0)", i + 1))?;
        if !is_rate && level.fract() != 0.0 {
            return Err(format!("stage {}: a worker count is a whole number", i + 1));
        }
        let duration =
            crate::units::parse_duration(dur).map_err(|e| format!("stage {}: {e}", i + 1))?;
        out.push(Stage { level, duration });
    }
    if out.iter().all(|s| s.level == 0.0) {
        return Err("every stage has level 0: nothing would run".into());
    }
    Ok((out, rates.unwrap_or(false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn stages_parse() {
        let (st, rate) = parse_stages("10/s:30s, 50/s:60s").unwrap();
        assert!(rate);
        assert_eq!(
            st[1],
            Stage {
                level: 50.0,
                duration: secs(60)
            }
        );
        let (st, rate) = parse_stages("20:1m").unwrap();
        assert!(!rate);
        assert_eq!(st[0].duration, secs(60));
        for bad in [
            "10/s:30s,20:10s",
            "10/s",
            "x/s:1s",
            "1.5:1s",
            "0:1s",
            "-1/s:1s",
            "5/s:soon",
        ] {
            assert!(parse_stages(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn levels_over_time() {
        let (stages, _) = parse_stages("10/s:2s,50/s:3s").unwrap();
        let p = Plan {
            model: LoadModel::Open {
                arrival: Arrival::Constant,
                max_in_flight: 10,
            },
            stages,
            max_flows: None,
            duration: None,
            warmup: Duration::ZERO,
        };
        assert_eq!(p.level_at(secs(1)), Some(10.0));
        assert_eq!(p.level_at(secs(4)), Some(50.0));
        assert_eq!(p.level_at(secs(5)), None);
        assert_eq!(p.end(), Some(secs(5)));
        assert_eq!(p.planned_flows(), Some(170));
        let held = Plan {
            duration: Some(secs(7)),
            ..p.clone()
        };
        assert_eq!(held.level_at(secs(6)), Some(50.0));
        assert_eq!(held.planned_flows(), Some(270));
        assert!(p
            .describe()
            .starts_with("open loop: constant arrivals at 10/s for 2s, then 50/s for 3s"));
        assert!(Plan::closed(20, 20)
            .describe()
            .starts_with("closed loop: 20 workers"));
    }
}
