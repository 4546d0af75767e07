//! Telling a real latency difference from noise: medians and the Mann–Whitney U test.
//!
//! Login latencies are skewed and have outliers (a GC pause, a scheduler hiccup), so a
//! t-test on means would be driven by a few slow samples. The U test compares ranks: it
//! asks whether a random sample of one group tends to be slower than one of the other,
//! and is robust to outliers. With 30+ samples per group the normal approximation
//! (with tie and continuity corrections) is accurate.

/// The result of a two-sided Mann–Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample.
    pub u: f64,
    pub z: f64,
    /// Two-sided p-value: the chance of a difference at least this large if both
    /// samples came from one distribution.
    pub p: f64,
}

/// Two-sided Mann–Whitney U test of `a` against `b`; `None` when either is empty or
/// every value is equal (no ranks to compare).
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    // Average ranks over ties; collect the tie correction term sum(t^3 - t).
    let mut rank_sum_a = 0.0;
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_a += all[i..=j].iter().filter(|(_, in_a)| *in_a).count() as f64 * rank;
        ties += t * t * t - t;
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let nf = n as f64;
    let variance = n1 * n2 / 12.0 * ((nf + 1.0) - ties / (nf * (nf - 1.0)));
    if variance <= 0.0 || !variance.is_finite() {
        return None;
    }
    let diff = u - n1 * n2 / 2.0;
    // Continuity correction: U moves in steps of 1 (or 1/2 with ties).
    let corrected = (diff.abs() - 0.5).max(0.0);
    let z = corrected / variance.sqrt() * diff.signum();
    let p = erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0);
    Some(MannWhitney { u, z, p })
}

/// The median (the mean of the middle two for an even count); `None` when empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    })
}

/// The complementary error function, with fractional error below 1.2e-7 everywhere
/// (the Chebyshev fit of Numerical Recipes, 2nd ed., §6.2); plenty for a p-value.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
        assert!(erfc(6.0) < 1e-15);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn identical_samples_are_not_different() {
        let a: Vec<f64> = (0..30).map(f64::from).collect();
        let r = mann_whitney(&a, &a).unwrap();
        assert!(r.p > 0.9, "{r:?}");
        assert_eq!(mann_whitney(&[1.0; 5], &[1.0; 5]), None);
        assert_eq!(mann_whitney(&[], &[1.0]), None);
    }

    #[test]
    fn shifted_samples_are_different() {
        let a: Vec<f64> = (0..30).map(f64::from).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 20.0).collect();
        let r = mann_whitney(&a, &b).unwrap();
        assert!(r.p < 1e-4 && r.z < 0.0, "{r:?}");
        // Known value: complete separation of 3 vs 3 gives U = 0.
        let r = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(r.u, 0.0);
    }

    #[test]
    fn interleaved_noise_is_not_significant() {
        // Two samples drawn alternately from one sequence.
        let xs: Vec<f64> = (0..80).map(|i| ((i * 37) % 101) as f64).collect();
        let a: Vec<f64> = xs.iter().step_by(2).copied().collect();
        let b: Vec<f64> = xs.iter().skip(1).step_by(2).copied().collect();
        assert!(mann_whitney(&a, &b).unwrap().p > 0.05);
    }
}
