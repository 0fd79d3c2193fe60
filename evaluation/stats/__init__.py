"""Statistics for online A/B evaluation: pure functions over sufficient statistics, no I/O.

The worker keeps additive aggregates (:mod:`.sufficient`, :mod:`.histogram`, :mod:`.aggregates`);
everything else reads them:

* :mod:`.frequentist` - two-proportion z, chi-square and Welch t tests with absolute and relative
  (delta-method) intervals;
* :mod:`.rank` - Mann-Whitney U on raw samples or approximately on two histograms;
* :mod:`.bootstrap` - percentile bootstrap where no closed form fits (with a note below 30 per
  arm, where it covers less than its level);
* :mod:`.ratio` - ratio-of-sums metrics per unit by the delta method;
* :mod:`.srm` - sample ratio mismatch;
* :mod:`.sequential` - mSPRT, valid under continuous peeking;
* :mod:`.multiple` - Holm and Benjamini-Hochberg;
* :mod:`.power` - power at an effect and sample size, minimum detectable effect (absolute and
  relative) and sample size;
* :mod:`.bayesian` - Beta-Binomial chance to win and expected loss;
* :mod:`.bayesian_means` - Gaussian posterior for means and for the relative lift;
* :mod:`.checks` - impossible aggregates (NaN counts, sums of squares below their floor) refused;
* :mod:`.full_results` - all of the above for a whole experiment in one vectorised pass.

Degenerate data never raises: results carry an ``error`` message saying why they are empty, and
a ``note`` where one figure is missing or computed another way. Invalid arguments and impossible
aggregates (alpha outside (0, 1), negative or NaN counts, more successes than observations) are
bugs and raise ``ValueError``.
"""

from evaluation.stats.aggregates import ExperimentAggregates
from evaluation.stats.bayesian import (
    BayesianResult,
    BetaPrior,
    beta_binomial_arrays,
    beta_binomial_test,
)
from evaluation.stats.bayesian_means import GaussianResult, gaussian_arrays, gaussian_test
from evaluation.stats.bootstrap import BootstrapResult, bootstrap_ci
from evaluation.stats.frequentist import (
    ComparisonArrays,
    ComparisonResult,
    chi_square_test,
    proportion_arrays,
    two_proportion_ztest,
    welch_arrays,
    welch_ttest,
)
from evaluation.stats.full_results import AnalysisConfig, FullResults, analyze
from evaluation.stats.histogram import HistogramLayout, LatencyHistogram
from evaluation.stats.multiple import (
    AdjustedPValues,
    adjust_p_values,
    benjamini_hochberg,
    holm,
)
from evaluation.stats.power import (
    MinimumDetectableEffect,
    SampleSize,
    mde_mean,
    mde_proportion,
    mde_relative,
    sample_size_mean,
    sample_size_proportion,
)
from evaluation.stats.power_effect import Power, power_mean, power_proportion
from evaluation.stats.rank import RankTestResult, mann_whitney_histograms, mann_whitney_u
from evaluation.stats.ratio import RatioStats, ratio_stats
from evaluation.stats.reasons import Reason
from evaluation.stats.sequential import (
    SequentialConfig,
    SequentialResult,
    msprt_arrays,
    msprt_means,
    msprt_proportions,
    msprt_relative_arrays,
)
from evaluation.stats.srm import SampleRatioResult, sample_ratio_mismatch
from evaluation.stats.sufficient import MeanStats, ProportionStats

__all__ = [
    "AdjustedPValues",
    "AnalysisConfig",
    "BayesianResult",
    "BetaPrior",
    "BootstrapResult",
    "ComparisonArrays",
    "ComparisonResult",
    "ExperimentAggregates",
    "FullResults",
    "GaussianResult",
    "HistogramLayout",
    "LatencyHistogram",
    "MeanStats",
    "MinimumDetectableEffect",
    "Power",
    "ProportionStats",
    "RankTestResult",
    "RatioStats",
    "Reason",
    "SampleRatioResult",
    "SampleSize",
    "SequentialConfig",
    "SequentialResult",
    "adjust_p_values",
    "analyze",
    "benjamini_hochberg",
    "beta_binomial_arrays",
    "beta_binomial_test",
    "bootstrap_ci",
    "chi_square_test",
    "gaussian_arrays",
    "gaussian_test",
    "holm",
    "mann_whitney_histograms",
    "mann_whitney_u",
    "mde_mean",
    "mde_proportion",
    "mde_relative",
    "msprt_arrays",
    "msprt_means",
    "msprt_proportions",
    "msprt_relative_arrays",
    "power_mean",
    "power_proportion",
    "proportion_arrays",
    "ratio_stats",
    "sample_ratio_mismatch",
    "sample_size_mean",
    "sample_size_proportion",
    "two_proportion_ztest",
    "welch_arrays",
    "welch_ttest",
]
