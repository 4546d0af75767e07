//! The hash time of a service authbench cannot look inside, measured from the outside.
//!
//! Each cost's run starts with a few calibration flows at concurrency 1, which give every
//! step's service time alone (no queue). A step that hashes takes `a + b·2^cost`: a floor
//! `a` (parsing, the database, the framework) that does not depend on the cost, and a hash
//! whose time doubles with each +1. A least-squares fit of that line in `x = 2^cost` over
//! the costs swept separates the two, per step. Steps whose time does not grow with the
//! cost are not hashing steps: all of their time is floor.
//!
//! Where the figures cannot carry a number (too few costs, nothing grows, a poor fit) the
//! result says "not measurable" and why, instead of a number. This module does no I/O.

use serde::{Deserialize, Serialize};

/// Fewer costs than this leave a two-parameter fit without a check of its error.
pub const MIN_COSTS: usize = 3;

/// A fit whose residuals exceed this share of the measured times (root mean square) is
/// not trusted.
pub const MAX_ERROR: f64 = 0.15;

/// A step is a hashing step when its time at the highest cost is at least this many times
/// its time at the lowest.
const GROWS: f64 = 1.5;

/// A step whose fitted hash grows by less than this share of the largest step's growth
/// (over the costs swept) grew by noise, not by hashing.
const NOISE_OF_LARGEST: f64 = 0.1;

/// What the hash time is linear in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// bcrypt: `2^cost`.
    #[default]
    Pow2,
    /// argon2id's m or t, scrypt's n or r, PBKDF2's iterations: the value itself.
    Linear,
}

impl Axis {
    /// The work at `value`.
    pub fn x(self, value: u32) -> f64 {
        match self {
            Axis::Pow2 => 2f64.powi(value as i32),
            Axis::Linear => f64::from(value),
        }
    }
}

/// One step's service time alone at one cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepService {
    pub name: String,
    /// Median latency of the calibration flows (concurrency 1), ms.
    pub service_ms: f64,
}

/// The fit of one step over the costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFit {
    pub name: String,
    /// Its time grows with the cost: it hashes.
    pub hashing: bool,
    /// The floor `a`: the step's time without the hash, ms (for a step that does not hash,
    /// its mean service time).
    pub floor_ms: f64,
    /// `b`: the hash time is `b·2^cost` ms; 0 for a step that does not hash.
    pub hash_ms_per_2_pow_cost: f64,
    /// Root mean square of the residuals relative to the measured times (0.05 = 5%).
    pub rms_error: f64,
    /// What `hash_ms_per_2_pow_cost` multiplies (`2^cost`, or a parameter's value).
    #[serde(default)]
    pub axis: Axis,
}

impl StepFit {
    /// The fitted hash time of this step at `cost` (or parameter value), ms.
    pub fn hash_ms(&self, cost: u32) -> f64 {
        self.hash_ms_per_2_pow_cost * self.axis.x(cost)
    }
}

/// The fit of every step, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HashFit {
    /// Costs the fit used.
    pub costs: Vec<u32>,
    pub steps: Vec<StepFit>,
    /// Why the hash time is not measurable; `null` when it is.
    pub not_measurable: Option<String>,
}

impl HashFit {
    /// The steps that hash.
    pub fn hashing(&self) -> impl Iterator<Item = &StepFit> {
        self.steps.iter().filter(|s| s.hashing)
    }

    /// Whether the fit carries numbers.
    pub fn measurable(&self) -> bool {
        self.not_measurable.is_none()
    }

    /// The time of one hash at `cost` (the mean over the hashing steps), ms.
    pub fn hash_ms(&self, cost: u32) -> Option<f64> {
        let n = self.hashing().count();
        (self.measurable() && n > 0)
            .then(|| self.hashing().map(|s| s.hash_ms(cost)).sum::<f64>() / n as f64)
    }

    /// Hashing per flow at `cost` (the sum over the hashing steps), ms.
    pub fn flow_hash_ms(&self, cost: u32) -> Option<f64> {
        self.measurable()
            .then(|| self.hashing().map(|s| s.hash_ms(cost)).sum())
    }

    /// The floor of the hashing steps (Σ a), ms.
    pub fn hashing_floor_ms(&self) -> f64 {
        self.hashing().map(|s| s.floor_ms).sum()
    }

    /// The worst relative error of the hashing steps' fits.
    pub fn worst_error(&self) -> f64 {
        self.hashing().map(|s| s.rms_error).fold(0.0, f64::max)
    }
}

/// Least squares of `y = a + b·x` on the residuals relative to `y` (weights `1/y²`):
/// timing noise grows with the time, so a plain fit lets the slowest cost's noise set the
/// floor and misses the fast costs by a wide margin. `None` with fewer than two distinct
/// `x` or a `y` that is not positive.
pub fn relative_least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 || points.iter().any(|p| p.1.is_nan() || p.1 <= 0.0) {
        return None;
    }
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(x, y) in points {
        let w = 1.0 / (y * y);
        sw += w;
        sx += w * x;
        sy += w * y;
        sxx += w * x * x;
        sxy += w * x * y;
    }
    let det = sw * sxx - sx * sx;
    if !(det.is_finite() && det > 0.0) || det <= 1e-12 * sw * sxx {
        return None;
    }
    let b = (sw * sxy - sx * sy) / det;
    Some(((sy - b * sx) / sw, b))
}

/// Least squares of `y = a + b·x`; `None` with fewer than two distinct `x`.
pub fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 || !sxx.is_finite() {
        return None;
    }
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

/// Fits every step of `rows` (per cost, the steps' service times alone) to
/// `a + b·2^cost`. Costs with a missing or differently shaped step list are left out.
pub fn fit(rows: &[(u32, Vec<StepService>)]) -> HashFit {
    fit_on(rows, Axis::Pow2)
}

/// [`fit`] on `a + b·x(value)` for the given axis.
pub fn fit_on(rows: &[(u32, Vec<StepService>)], axis: Axis) -> HashFit {
    let Some((_, first)) = rows.iter().find(|(_, s)| !s.is_empty()) else {
        return HashFit {
            costs: Vec::new(),
            steps: Vec::new(),
            not_measurable: Some("no cost measured a service time alone".into()),
        };
    };
    let names: Vec<&str> = first.iter().map(|s| s.name.as_str()).collect();
    let usable: Vec<&(u32, Vec<StepService>)> = rows
        .iter()
        .filter(|(_, s)| {
            s.len() == names.len()
                && s.iter().zip(&names).all(|(a, b)| a.name == *b)
                && s.iter()
                    .all(|x| x.service_ms.is_finite() && x.service_ms > 0.0)
        })
        .collect();
    let costs: Vec<u32> = usable.iter().map(|(c, _)| *c).collect();
    let points: Vec<Vec<(f64, f64)>> = (0..names.len())
        .map(|i| {
            usable
                .iter()
                .map(|(c, s)| (axis.x(*c), s[i].service_ms))
                .collect()
        })
        .collect();
    let mut steps: Vec<StepFit> = names
        .iter()
        .zip(&points)
        .map(|(name, pts)| step_fit(name, pts, axis))
        .collect();
    // A fast step whose time grew by noise (a 5 ms verify at 8 ms) is not hashing: the
    // hashing steps are those whose fitted hash grows by a material share of the largest
    // growth, not merely by ×1.5.
    let growth = |s: &StepFit| {
        s.hash_ms(costs.last().copied().unwrap_or(0))
            - s.hash_ms(costs.first().copied().unwrap_or(0))
    };
    let largest = steps
        .iter()
        .filter(|s| s.hashing)
        .map(growth)
        .fold(0.0, f64::max);
    for (s, pts) in steps.iter_mut().zip(&points) {
        if s.hashing && growth(s) < NOISE_OF_LARGEST * largest {
            *s = flat_fit(&s.name, pts, axis);
        }
    }
    let not_measurable = if costs.len() < MIN_COSTS {
        Some(format!(
            "{} cost{} measured; separating the hash from the floor needs at least {MIN_COSTS}",
            costs.len(),
            if costs.len() == 1 { "" } else { "s" }
        ))
    } else if !steps.iter().any(|s| s.hashing) {
        Some(format!(
            "no step's service time grows with the cost (by ×{GROWS} from cost {} to {}): the hash is too small to see against the rest, or the cost does not reach the service",
            costs[0],
            costs[costs.len() - 1]
        ))
    } else {
        steps
            .iter()
            .find(|s| s.hashing && s.rms_error > MAX_ERROR)
            .map(|bad| {
                format!(
                    "the fit t = a + b·2^cost misses `{}`'s service times by {:.0}% (more than {:.0}%): its time does not double with the cost",
                    bad.name,
                    bad.rms_error * 100.0,
                    MAX_ERROR * 100.0
                )
            })
    };
    HashFit {
        costs,
        steps,
        not_measurable,
    }
}

/// A step that does not hash: all of its time is floor.
fn flat_fit(name: &str, pts: &[(f64, f64)], axis: Axis) -> StepFit {
    let mean = if pts.is_empty() {
        0.0
    } else {
        pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64
    };
    StepFit {
        name: name.to_string(),
        hashing: false,
        floor_ms: mean,
        hash_ms_per_2_pow_cost: 0.0,
        rms_error: rms_rel(pts, |_| mean),
        axis,
    }
}

fn step_fit(name: &str, pts: &[(f64, f64)], axis: Axis) -> StepFit {
    let flat = flat_fit(name, pts, axis);
    let grows = match (pts.first(), pts.last()) {
        (Some(lo), Some(hi)) if pts.len() >= 2 => hi.1 >= GROWS * lo.1,
        _ => false,
    };
    match relative_least_squares(pts) {
        Some((a, b)) if grows && b > 0.0 => {
            // A floor below zero is noise around a step that is all hash: fit through 0
            // (relative least squares again: weights 1/y²).
            let (a, b) = if a < 0.0 {
                let sxy: f64 = pts.iter().map(|p| p.0 / p.1).sum();
                let sxx: f64 = pts.iter().map(|p| (p.0 / p.1).powi(2)).sum();
                (0.0, sxy / sxx)
            } else {
                (a, b)
            };
            StepFit {
                name: name.to_string(),
                hashing: true,
                floor_ms: a,
                hash_ms_per_2_pow_cost: b,
                rms_error: rms_rel(pts, |x| a + b * x),
                axis,
            }
        }
        _ => flat,
    }
}

fn rms_rel(pts: &[(f64, f64)], f: impl Fn(f64) -> f64) -> f64 {
    if pts.is_empty() {
        return 0.0;
    }
    let s: f64 = pts
        .iter()
        .map(|&(x, y)| ((f(x) - y) / y).powi(2))
        .sum::<f64>()
        / pts.len() as f64;
    s.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(
        f: impl Fn(u32) -> Vec<(&'static str, f64)>,
        costs: &[u32],
    ) -> Vec<(u32, Vec<StepService>)> {
        costs
            .iter()
            .map(|&c| {
                (
                    c,
                    f(c).into_iter()
                        .map(|(n, ms)| StepService {
                            name: n.into(),
                            service_ms: ms,
                        })
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn recovers_a_known_floor_and_hash() {
        let truth = |c: u32| {
            vec![
                ("register", 30.0 + 2f64.powi(c as i32 - 4)),
                ("login", 30.0 + 2f64.powi(c as i32 - 4)),
                ("profile", 2.0),
            ]
        };
        let f = fit(&rows(truth, &[4, 5, 6, 7, 8, 9, 10]));
        assert!(f.measurable(), "{f:?}");
        assert_eq!(f.hashing().count(), 2);
        assert!((f.hash_ms(4).unwrap() - 1.0).abs() < 1e-6);
        assert!((f.hash_ms(10).unwrap() - 64.0).abs() < 1e-6);
        assert!((f.hashing_floor_ms() - 60.0).abs() < 1e-6);
        assert!(f.worst_error() < 1e-9);
        assert!(!f.steps[2].hashing);
        assert!((f.steps[2].floor_ms - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_fast_step_grown_by_noise_is_not_a_hashing_step() {
        // verify takes ~5 ms and came out at 8 ms at the top cost (noise: ×1.6); register
        // and login hash ~62 ms at cost 10.
        let truth = |c: u32| {
            let hash = 62.0 * 2f64.powi(c as i32 - 10);
            vec![
                ("register", 3.0 + hash),
                ("login", 3.0 + hash),
                ("verify", if c == 12 { 8.0 } else { 5.0 }),
            ]
        };
        let f = fit(&rows(truth, &[10, 11, 12]));
        assert!(f.measurable(), "{f:?}");
        assert!(!f.steps[2].hashing, "{f:?}");
        assert_eq!(f.hashing().count(), 2);
        assert!((f.hash_ms(10).unwrap() - 62.0).abs() < 1.0, "{f:?}");
    }

    #[test]
    fn says_not_measurable_instead_of_a_number() {
        let truth = |c: u32| vec![("login", 30.0 + 2f64.powi(c as i32 - 4))];
        let two = fit(&rows(truth, &[8, 9]));
        assert!(!two.measurable());
        assert!(two.not_measurable.unwrap().contains("at least 3"));
        assert_eq!(fit(&rows(truth, &[8, 9])).hash_ms(8), None);

        let flat = fit(&rows(|_| vec![("login", 370.0)], &[4, 5, 6]));
        assert!(flat.not_measurable.unwrap().contains("grows"));

        // Linear in the cost, not exponential: the fit misses.
        let linear = fit(&rows(
            |c| vec![("login", 10.0 * c as f64)],
            &[4, 8, 12, 16, 20],
        ));
        assert!(
            linear
                .not_measurable
                .as_deref()
                .is_some_and(|m| m.contains("misses")),
            "{linear:?}"
        );
        assert!(fit(&[]).not_measurable.is_some());
    }

    #[test]
    fn one_noisy_slow_cost_does_not_set_the_floor() {
        // Real bcrypt served inline, costs 6..=11, on a loaded machine: cost 9 came out
        // 40% slow. A plain fit put the floor at 4.6 ms and missed cost 6 by 70%.
        let measured = [5.49, 10.59, 20.11, 55.81, 79.68, 153.22];
        let rows: Vec<(u32, Vec<StepService>)> = (6..=11)
            .zip(measured)
            .map(|(c, ms)| {
                (
                    c,
                    vec![StepService {
                        name: "register".into(),
                        service_ms: ms,
                    }],
                )
            })
            .collect();
        let f = fit(&rows);
        let s = &f.steps[0];
        assert!(s.floor_ms < 1.0, "{s:?}");
        assert!((s.hash_ms(6) - 5.0).abs() < 1.0, "{s:?}");
        assert!(f.measurable(), "{f:?}");
    }

    #[test]
    fn relative_fit_recovers_exact_lines() {
        let (a, b) = relative_least_squares(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]).unwrap();
        assert!((a - 1.0).abs() < 1e-9 && (b - 2.0).abs() < 1e-9);
        assert_eq!(relative_least_squares(&[(1.0, 0.0), (2.0, 1.0)]), None);
        assert_eq!(relative_least_squares(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn least_squares_edges() {
        assert_eq!(least_squares(&[(1.0, 1.0)]), None);
        assert_eq!(least_squares(&[(1.0, 1.0), (1.0, 2.0)]), None);
        let (a, b) = least_squares(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((a - 1.0).abs() < 1e-12 && (b - 2.0).abs() < 1e-12);
    }
}
