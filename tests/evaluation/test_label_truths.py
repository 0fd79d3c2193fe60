"""The verified labels read once for a page (`LabelTruths`) give every read the figures its
own read of the labels gives: the results of the whole window and per unit, each look of the
always-valid series, the arms' intervals; a window the read does not cover is refused."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from core.store.db import Database
from dashboards import data
from evaluation.label_accuracy import labels_once
from evaluation.online import hour_window
from evaluation.results import experiment_results
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction
from tests.evaluation.test_truth_rules import _label
from tests.evaluation.unit_data import ARMS

CLASSES = ("setosa", "versicolor", "virginica")
HOURS = 6


def _traffic(db: Database) -> None:
    """Six hours of answers on both arms, half corrected, many labeled (some disagreeing with
    the correction, some labeling an uncorrected answer)."""
    rng = np.random.default_rng(7)
    batch, labels = [], []
    for arm, cand in ARMS:
        for i in range(60):
            pid, at = f"{arm[0]}{i}", T0 + timedelta(minutes=6 * i)
            batch.append(prediction(pid, arm=arm, candidate=cand, unit_id=f"{arm}-{i % 9}",
                                    output=str(rng.choice(CLASSES)), at=at))
            if rng.random() < 0.5:
                batch.append(correction(pid, str(rng.choice(CLASSES)), at=at))
            if rng.random() < 0.6:
                labels.append((pid, str(rng.choice(CLASSES))))
    apply(db, batch)
    for pid, label in labels:
        _label(db, pid, label)


def _same(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"] and a["comparisons"] == b["comparisons"]
    assert a["online_accuracy"] == b["online_accuracy"]


def test_labels_read_once_give_each_window_its_own_figures(db: Database) -> None:
    exp = add_experiment(db)
    _traffic(db)
    since, until = T0 + timedelta(hours=1), T0 + timedelta(hours=HOURS)
    with db.reading() as s:
        page = labels_once(s, exp, *hour_window(since, until))
        assert page.sums[0].sums and page.sums[1].sums  # labels were swapped in and out
        _same(experiment_results(s, exp, since=since, until=until, labels=page),
              experiment_results(s, exp, since=since, until=until))
        for end in range(2, HOURS + 1):
            look = {"since": since, "until": T0 + timedelta(hours=end), "per_unit": False}
            _same(experiment_results(s, exp, **look, labels=page),
                  experiment_results(s, exp, **look))
        with pytest.raises(ValueError, match="asked for"):  # wider than the hours read
            experiment_results(s, exp, until=until, per_unit=False, labels=page)
        with pytest.raises(ValueError, match="own window"):  # unit sums span a unit's hours
            experiment_results(s, exp, since=since, until=T0 + timedelta(hours=3), labels=page)


def test_a_pages_reads_with_its_labels_are_the_reads_alone(db: Database) -> None:
    exp = add_experiment(db)
    _traffic(db)
    for window in (data.Window(), data.Window(since=T0 + timedelta(hours=2))):
        page = data.labels(db, exp, window)
        units: list = []
        res = data.results(db, exp, window, units_out=units, labels=page)
        _same(res, data.results(db, exp, window))
        assert data.arm_intervals(db, exp, "all", window, res["alpha"], units[0], page) == \
            data.arm_intervals(db, exp, "all", window, res["alpha"], units[0])
        series = data.sequential_series(db, exp, "exact_match", "all", window, labels=page)
        assert series and series == data.sequential_series(db, exp, "exact_match", "all",
                                                           window)
