//! Whether a soak leaked: counts that must be exactly flat once the run is
//! warm, and a least-squares fit of each process's RSS against cycles whose
//! 95% confidence bound must stay under a growth limit. Pure arithmetic on
//! the samples; nothing here reads the machine.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// One count over the steady samples: exactly flat or not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Flatness {
    pub what: String,
    pub min: u64,
    pub max: u64,
    /// Held to "exactly flat", or only to "no higher late than early".
    pub exact: bool,
    pub flat: bool,
}

/// A process's RSS against cycles, over the steady samples.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RssFit {
    pub process: String,
    pub samples: usize,
    /// Least-squares slope, KB per 1,000 cycles.
    #[serde(deserialize_with = "nan_if_null")]
    pub slope_kb_per_1000: f64,
    /// Upper end of the slope's two-sided 95% confidence interval.
    #[serde(deserialize_with = "nan_if_null")]
    pub upper_kb_per_1000: f64,
    pub first_kb: u64,
    pub last_kb: u64,
    /// `upper_kb_per_1000` below the limit.
    pub pass: bool,
}

/// JSON has no NaN or infinity (serde_json writes `null`): a fit without
/// a number reads back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// `values` (the steady samples of one count): flat when all are equal.
pub fn flatness(what: &str, values: &[u64]) -> Flatness {
    let min = values.iter().copied().min().unwrap_or_default();
    let max = values.iter().copied().max().unwrap_or_default();
    Flatness {
        what: what.to_string(),
        min,
        max,
        exact: true,
        flat: min == max,
    }
}

/// How far containerd's thread count may rise over a soak's steady
/// cycles. The Go runtime starts an OS thread when every one it has is
/// blocked in a system call and never ends it: the count is a high-water
/// mark that a burst of slow calls lifts by one or two, then stays.
pub const GO_THREADS_SLACK: u64 = 2;

/// `values` of a count its owner raises for its own reasons and never
/// lowers (the Go runtime's OS threads in containerd): it passes when the
/// run ends at most `slack` above where it began. A leak keeps what it
/// takes on every cycle it leaks on, so over a steady run of a hundred
/// cycles and more it ends far above that. (CI runs failed on 11, 11, 11,
/// 12, 11 and on 12, 12, 12, 12, 13, 13 under verdicts that read any rise
/// in the later half as a leak.)
pub fn rises_at_most(what: &str, values: &[u64], slack: u64) -> Flatness {
    let first = values.first().copied().unwrap_or_default();
    Flatness {
        exact: false,
        flat: values
            .last()
            .is_none_or(|last| *last <= first.saturating_add(slack)),
        ..flatness(what, values)
    }
}

/// Ordinary least squares of `kb` against `cycle`, with the slope's
/// standard error and Student's t at n-2 degrees of freedom (statrs). Fewer
/// than three points give no interval: the fit fails rather than passes.
pub fn rss_fit(process: &str, points: &[(usize, u64)], limit_kb_per_1000: f64) -> RssFit {
    let n = points.len();
    let first_kb = points.first().map(|p| p.1).unwrap_or_default();
    let last_kb = points.last().map(|p| p.1).unwrap_or_default();
    let failed = |slope: f64| RssFit {
        process: process.to_string(),
        samples: n,
        slope_kb_per_1000: slope,
        upper_kb_per_1000: f64::INFINITY,
        first_kb,
        last_kb,
        pass: false,
    };
    if n < 3 {
        return failed(f64::NAN);
    }
    let xs: Vec<f64> = points.iter().map(|p| p.0 as f64 / 1000.0).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1 as f64).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mx, my) = (mean(&xs), mean(&ys));
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx == 0.0 {
        return failed(f64::NAN);
    }
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let residuals: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (y - intercept - slope * x).powi(2))
        .sum();
    let degrees = (n - 2) as f64;
    let standard_error = (residuals / degrees / sxx).sqrt();
    let Ok(t) = StudentsT::new(0.0, 1.0, degrees) else {
        return failed(slope);
    };
    let upper = slope + t.inverse_cdf(0.975) * standard_error;
    RssFit {
        process: process.to_string(),
        samples: n,
        slope_kb_per_1000: slope,
        upper_kb_per_1000: upper,
        first_kb,
        last_kb,
        pass: upper < limit_kb_per_1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_equal_counts_are_flat_and_one_more_is_not() {
        assert!(flatness("fds", &[18, 18, 18]).flat);
        let grown = flatness("fds", &[18, 18, 19]);
        assert_eq!((grown.min, grown.max, grown.flat), (18, 19, false));
    }

    #[test]
    fn test_a_high_water_mark_that_settles_passes_and_one_that_climbs_fails() {
        assert!(rises_at_most("t", &[11, 13, 12, 11, 13, 12], 2).flat);
        assert!(rises_at_most("t", &[11, 11, 11, 12, 11], 2).flat);
        assert!(rises_at_most("t", &[12, 12, 12, 12, 13, 13], 2).flat);
        assert!(!rises_at_most("t", &[11, 12, 12, 13, 14, 15], 2).flat);
        assert!(!rises_at_most("t", &[11, 11, 11, 11, 14], 2).flat);
        assert!(!rises_at_most("t", &[11, 12, 12, 13, 14, 15], 2).exact);
    }

    #[test]
    fn test_a_level_rss_passes_and_a_leak_of_100_kb_per_1000_cycles_fails() {
        let level: Vec<(usize, u64)> = (2..=20)
            .map(|i| (i * 500, 22_000 + (i % 2) as u64))
            .collect();
        let fit = rss_fit("shim", &level, 64.0);
        assert!(fit.pass, "{fit:?}");
        assert!(fit.slope_kb_per_1000.abs() < 1.0, "{fit:?}");

        let leak: Vec<(usize, u64)> = (2..=20)
            .map(|i| (i * 500, 22_000 + (i * 50) as u64 + (i % 3) as u64))
            .collect();
        let fit = rss_fit("shim", &leak, 64.0);
        assert!(!fit.pass, "{fit:?}");
        assert!((fit.slope_kb_per_1000 - 100.0).abs() < 2.0, "{fit:?}");
    }

    #[test]
    fn test_the_bound_is_above_the_slope_and_widens_with_noise() {
        let quiet: Vec<(usize, u64)> = (0..10).map(|i| (1000 + i * 500, 100 + i as u64)).collect();
        let noisy: Vec<(usize, u64)> = (0..10)
            .map(|i| {
                (
                    1000 + i * 500,
                    100 + i as u64 + if i % 2 == 0 { 40 } else { 0 },
                )
            })
            .collect();
        let (q, n) = (rss_fit("a", &quiet, 64.0), rss_fit("a", &noisy, 64.0));
        assert!(q.upper_kb_per_1000 >= q.slope_kb_per_1000);
        assert!(
            n.upper_kb_per_1000 - n.slope_kb_per_1000 > q.upper_kb_per_1000 - q.slope_kb_per_1000
        );
    }

    #[test]
    fn test_a_fit_without_a_number_survives_json() {
        let fit = rss_fit("a", &[], 64.0);
        let text = serde_json::to_string(&fit).expect("json");
        let back: RssFit = serde_json::from_str(&text).expect("reads back");
        assert!(back.upper_kb_per_1000.is_nan() && !back.pass);
    }

    #[test]
    fn test_too_few_samples_fail_rather_than_pass() {
        assert!(!rss_fit("a", &[(1000, 1), (1500, 1)], 64.0).pass);
        assert!(!rss_fit("a", &[(1000, 1), (1000, 2), (1000, 3)], 64.0).pass);
    }
}
