//! Whether two sets of per-request samples differ: the Mann–Whitney U test (rank-sum, no
//! assumption of normality, robust to the long tails latency has), with the normal approximation
//! and tie correction, as scipy's `mannwhitneyu(..., method="asymptotic", use_continuity=True)`.

/// The test's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U statistic of the first sample.
    pub u: f64,
    /// Standardised statistic.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Runs the test on `a` and `b` (each at least one sample; NaNs are not allowed).
pub fn mann_whitney(a: &[f64], b: &[f64]) -> MannWhitney {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    mann_whitney_sorted(&a, &b)
}

/// The same test on samples already sorted ascending, so callers with millions of samples can
/// sort them in parallel. Ranks come from one merge walk over both samples.
pub fn mann_whitney_sorted(a: &[f64], b: &[f64]) -> MannWhitney {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    // Average ranks over ties; accumulate the tie correction term sum(t^3 - t).
    let mut rank_sum_a = 0.0;
    let mut ties = 0.0;
    let (mut i, mut j) = (0usize, 0usize);
    let mut seen = 0usize;
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => {
                if x.total_cmp(&y).is_le() {
                    x
                } else {
                    y
                }
            }
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        let ta = a[i..].iter().take_while(|&&x| x == v).count();
        let tb = b[j..].iter().take_while(|&&y| y == v).count();
        let t = (ta + tb) as f64;
        // Ranks seen+1 ..= seen+t share their average.
        let rank = seen as f64 + (t + 1.0) / 2.0;
        ties += t * t * t - t;
        rank_sum_a += ta as f64 * rank;
        seen += ta + tb;
        i += ta;
        j += tb;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    if var <= 0.0 {
        return MannWhitney { u, z: 0.0, p: 1.0 };
    }
    let d = u - mean;
    let z = (d - 0.5 * d.signum()) / var.sqrt();
    MannWhitney { u, z, p: (2.0 * normal_sf(z.abs())).min(1.0) }
}

/// Upper tail of the standard normal distribution.
fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
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
    fn matches_hand_computed_values() {
        // a = [1, 2, 3], b = [4, 5, 6]: ranks of a are 1, 2, 3 -> R = 6, U = 6 - 6 = 0.
        // mean = 4.5, var = 9 / 12 * 7 = 5.25, z = (0 - 4.5 + 0.5) / sqrt(5.25) = -1.7457,
        // p = 2 * sf(1.7457) = 0.0809 (scipy: 0.08085).
        let r = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert_eq!(r.u, 0.0);
        assert!((r.z + 1.7457).abs() < 1e-3, "{r:?}");
        assert!((r.p - 0.0809).abs() < 1e-3, "{r:?}");
        // Ties: a = [1, 2, 2], b = [2, 3, 3]: ranks 1, 3, 3 | 3, 5.5, 5.5 -> R = 7, U = 1;
        // tie term (27 - 3) + (8 - 2) = 30; var = 9/12 * (7 - 30/30) = 4.5;
        // z = (1 - 4.5 + 0.5) / sqrt(4.5) = -1.4142, p = 0.1573.
        let r = mann_whitney(&[1.0, 2.0, 2.0], &[2.0, 3.0, 3.0]);
        assert_eq!(r.u, 1.0);
        assert!((r.p - 0.1573).abs() < 1e-3, "{r:?}");
        // Identical samples: no evidence of a difference.
        let same = mann_whitney(&[5.0; 10], &[5.0; 10]);
        assert_eq!(same.p, 1.0);
    }

    #[test]
    fn a_ten_percent_shift_is_significant_with_enough_samples() {
        let a: Vec<f64> = (0..200).map(|i| 100.0 + (i % 20) as f64).collect();
        let b: Vec<f64> = a.iter().map(|x| x * 1.1).collect();
        assert!(mann_whitney(&a, &b).p < 1e-6);
        let c: Vec<f64> = (0..200).map(|i| 100.0 + ((i * 7) % 20) as f64).collect();
        assert!(mann_whitney(&a, &c).p > 0.5);
    }
}
