"""Search: short recovery per candidate, the paper's score, budgets and the spread of evaluated cuts."""

import pytest

from neuroprune.depth import Budgets, DepthPruner, score, search_cuts
from neuroprune.errors import ConfigError


def test_score_formula() -> None:
    assert score(0.9, 50, 100) == pytest.approx(0.8 * 0.9 + 0.2 * 0.5)
    assert score(0.9, 50, 100, tau=1.0) == pytest.approx(0.9)


def test_search_ranks_evaluated_candidates_under_a_budget(tiny, example, digits_train, digits_test) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    limit = pruner.units and sum(u.params for u in pruner.units) * 0.8
    found = search_cuts(pruner, digits_train, digits_test, budgets=Budgets(max_params=int(limit)),
                        translator_epochs=1, max_evaluated=3)
    evaluated = [r for r in found.rows if r["accuracy"] is not None]
    assert len(evaluated) == 3 and len(found.rows) == len(pruner.candidates())
    assert all(r["meets_budget"] and r["params"] <= limit for r in evaluated)
    assert [r["score"] for r in evaluated] == sorted((r["score"] for r in evaluated), reverse=True)
    best = evaluated[0]
    assert found.best.cut == best["cut"]
    assert best["score"] == pytest.approx(score(best["accuracy"], best["params"], found.base["params"]))


def test_search_by_measured_latency(tiny, example, digits_train, digits_test) -> None:
    pruner = DepthPruner(tiny("vgg11"), example_inputs=example)
    spans = pruner.candidates()[:3]
    found = search_cuts(pruner, digits_train, digits_test, efficiency="latency", translator_epochs=0,
                        spans=spans, latency_repeats=3)
    assert all(r["latency_ms"] > 0 for r in found.rows) and found.base["latency_ms"] > 0


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="tau"):
        search_cuts(None, [], [], tau=2.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="efficiency"):
        search_cuts(None, [], [], efficiency="flops")  # type: ignore[arg-type]


def test_latency_search_times_candidates_beside_the_base_and_again_when_recovered(tiny, digits_train) -> None:
    model = tiny("vgg11").eval()
    pruner = DepthPruner(model, example_inputs=next(iter(digits_train))[0][:1])
    found = search_cuts(pruner, digits_train, digits_train, efficiency="latency", translator_epochs=0,
                        max_evaluated=2, latency_repeats=3, latency_rounds=1, spans=pruner.candidates()[:4])
    assert found.base["latency_ms"] > 0
    for row in found.rows:
        assert row["speedup"] > 0
        assert abs(row["latency_ms"] - found.base["latency_ms"] / row["speedup"]) < 1e-9
    assert sum(row["accuracy"] is not None for row in found.rows) == 2
