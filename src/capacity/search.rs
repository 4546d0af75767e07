//! The search itself, with no I/O: which rate to try next given the verdicts so far.
//! Rates grow by a factor until one fails (bracketing), then the bracket is halved on a
//! log scale (the geometric mean of its ends) until its ends are within the precision.
//! The driver (`capacity::run`) owns the clock and the budget; this only decides.

/// The bounds and the precision of one search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The first rate tried, flows/s.
    pub start: f64,
    /// Never offer more than this (`--max-rate`).
    pub max: f64,
    /// Give up below this: the service sustains less (`start / 64` unless told).
    pub min: f64,
    /// The factor between bracketing steps (2: doubling).
    pub growth: f64,
    /// Stop once the lowest failing rate is within this fraction above the highest
    /// passing one (0.05: 5%).
    pub precision: f64,
}

/// Why a search stopped (in the JSON, as snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The bracket is within the precision: the sustainable rate is known.
    Converged,
    /// `--max-rate` passed: the service sustains at least that much.
    MaxRate,
    /// Even the lowest rate failed: the service sustains less than it.
    BelowMin,
    /// `--max-duration` ran out first: the figures are a bracket, not converged.
    Budget,
    /// Ctrl-C.
    Interrupted,
}

impl End {
    /// A few words for the summary line.
    pub fn describe(self) -> &'static str {
        match self {
            End::Converged => "converged",
            End::MaxRate => "--max-rate reached: at least this much",
            End::BelowMin => "every rate tried failed: less than the lowest",
            End::Budget => "--max-duration ran out before the precision was reached",
            End::Interrupted => "interrupted",
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Offer this rate (flows/s) for one step.
    Try(f64),
    /// The search is over.
    Done(End),
}

/// The state of a search: the highest rate that passed and the lowest that failed.
#[derive(Debug, Clone)]
pub struct Search {
    bounds: Bounds,
    /// Highest passing rate.
    pub pass: Option<f64>,
    /// Lowest failing rate.
    pub fail: Option<f64>,
}

impl Search {
    pub fn new(bounds: Bounds) -> Search {
        Search {
            bounds,
            pass: None,
            fail: None,
        }
    }

    /// The next rate, or why the search is over.
    pub fn next(&self) -> Next {
        let b = &self.bounds;
        match (self.pass, self.fail) {
            (None, None) => Next::Try(b.start.min(b.max)),
            (Some(p), None) if p >= b.max => Next::Done(End::MaxRate),
            (Some(p), None) => Next::Try((p * b.growth).min(b.max)),
            (None, Some(f)) if f <= b.min => Next::Done(End::BelowMin),
            (None, Some(f)) => Next::Try((f / b.growth).max(b.min)),
            (Some(p), Some(f)) if f <= p * (1.0 + b.precision) => Next::Done(End::Converged),
            (Some(p), Some(f)) => Next::Try((p * f).sqrt()),
        }
    }

    /// Records a step's verdict at `rate`. A pass above a failure (noise) moves the
    /// failure up rather than leaving an inverted bracket.
    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.pass = Some(self.pass.map_or(rate, |p| p.max(rate)));
            if self.fail.is_some_and(|f| f <= rate) {
                self.fail = None;
            }
        } else {
            self.fail = Some(self.fail.map_or(rate, |f| f.min(rate)));
            if self.pass.is_some_and(|p| p >= rate) {
                self.pass = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            start: 5.0,
            max: 10_000.0,
            min: 5.0 / 64.0,
            growth: 2.0,
            precision: 0.05,
        }
    }

    /// Runs a search against a service that sustains exactly `truth`.
    fn search(b: Bounds, truth: f64) -> (Search, End, usize) {
        let mut s = Search::new(b);
        let mut steps = 0;
        loop {
            match s.next() {
                Next::Try(r) => {
                    steps += 1;
                    assert!(steps < 100, "the search does not end");
                    s.record(r, r <= truth);
                }
                Next::Done(end) => return (s, end, steps),
            }
        }
    }

    #[test]
    fn brackets_then_bisects_to_the_precision() {
        for truth in [0.3, 1.0, 4.4, 50.0, 100.0, 777.0] {
            let (s, end, steps) = search(bounds(), truth);
            assert_eq!(end, End::Converged, "{truth}");
            let (p, f) = (s.pass.unwrap(), s.fail.unwrap());
            assert!(p <= truth && truth < f, "{truth}: {p}..{f}");
            assert!(f <= p * 1.05, "{truth}: {p}..{f}");
            assert!(steps <= 16, "{truth}: {steps} steps");
        }
    }

    #[test]
    fn ends_at_the_bounds() {
        let (s, end, _) = search(bounds(), 1e9);
        assert_eq!((end, s.pass), (End::MaxRate, Some(10_000.0)));
        let (s, end, _) = search(bounds(), 0.01);
        assert_eq!((end, s.pass), (End::BelowMin, None));
    }

    #[test]
    fn a_pass_above_a_failure_reopens_the_bracket() {
        let mut s = Search::new(bounds());
        s.record(10.0, false);
        s.record(5.0, true);
        s.record(20.0, true);
        assert_eq!((s.pass, s.fail), (Some(20.0), None));
        assert_eq!(s.next(), Next::Try(40.0));
        s.record(15.0, false);
        assert_eq!((s.pass, s.fail), (None, Some(15.0)));
    }
}
