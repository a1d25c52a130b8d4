"""Nodes of promotion: score challenger and champion alike, decide, release.

Both models are scored as serving runs them (their LiteRT exports) on the same
sets: the official test set, the drawn-digit set and, once it is large enough,
the feedback holdout.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np

from mnist_mlops.errors import PromotionError
from mnist_mlops.modeling.litert import litert_predict
from mnist_mlops.params import PromotionParams, parse

logger = logging.getLogger(__name__)

PARAMS_FILE = "parameters_promotion.yml"


def _accuracy(model_bytes: bytes, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(litert_predict(model_bytes, x).argmax(-1) == y))


def _checked_bytes(who: str, model_bytes: bytes, card: dict[str, Any]) -> bytes:
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != card["model_sha256"]:
        raise PromotionError(
            f"The {who}'s LiteRT model (sha256 {digest}) is not the one its card "
            f"{card['version']} describes ({card['model_sha256']}); nothing was "
            "promoted. Re-run training so that model and card come from one run."
        )
    return model_bytes


def score_models(  # noqa: PLR0913, PLR0917 - a node's inputs are its datasets
    challenger_bytes: bytes,
    challenger_card: dict[str, Any],
    champion: dict[str, Any],
    x_official: np.ndarray,
    y_official: np.ndarray,
    x_drawn: np.ndarray,
    y_drawn: np.ndarray,
    x_holdout: np.ndarray,
    y_holdout: np.ndarray,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Accuracies of challenger and champion (if any) on the same sets."""
    cfg = parse(PromotionParams, params, PARAMS_FILE)
    sets = {
        "official_test_accuracy": (x_official, y_official),
        "drawn_test_accuracy": (x_drawn, y_drawn),
    }
    if len(y_holdout) >= cfg.min_feedback_holdout:
        sets["feedback_holdout_accuracy"] = (x_holdout, y_holdout)
    else:
        logger.info(
            "Feedback holdout of %d example(s), below promotion.min_feedback_holdout "
            "%d: not compared.",
            len(y_holdout),
            cfg.min_feedback_holdout,
        )
    models = {
        "challenger": _checked_bytes("challenger", challenger_bytes, challenger_card)
    }
    if champion:
        models["champion"] = _checked_bytes(
            "champion", champion["model_bytes"], champion["card"]
        )
    scores: dict[str, Any] = {
        who: {name: _accuracy(m, x, y) for name, (x, y) in sets.items()}
        for who, m in models.items()
    }
    scores["samples"] = {name: len(y) for name, (_, y) in sets.items()}
    scores["challenger_version"] = challenger_card["version"]
    scores["champion_version"] = champion["card"]["version"] if champion else None
    scores["champion_registry_version"] = champion.get("registry_version")
    return scores


def _check(metric: str, scores: dict[str, Any], cfg: PromotionParams) -> dict[str, Any]:
    new = scores["challenger"][metric]
    floor = getattr(cfg.floors, metric)
    old = scores.get("champion", {}).get(metric)
    problems = []
    if new < floor:
        problems.append(f"{metric} {new:.4f} is below its floor {floor:.4f}")
    if old is not None and old - new > cfg.tolerance:
        problems.append(
            f"{metric} dropped {old - new:.4f} (champion {old:.4f}, challenger "
            f"{new:.4f}), more than the tolerance {cfg.tolerance:.4f}"
        )
    return {
        "metric": metric,
        "challenger": new,
        "champion": old,
        "floor": floor,
        "tolerance": cfg.tolerance,
        "passed": not problems,
        "problems": problems,
    }


def decide_promotion(
    scores: dict[str, Any],
    challenger_bytes: bytes,
    challenger_card: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict]]:
    """(release, report, MLflow scalars): promote only if every check passes.

    A check fails when the challenger is below a floor, or more than the
    tolerance below the champion. With no champion only the floors apply.
    """
    cfg = parse(PromotionParams, params, PARAMS_FILE)
    checks = [_check(m, scores, cfg) for m in scores["challenger"]]
    problems = [p for c in checks for p in c["problems"]]
    promote = not problems
    first = scores["champion_version"] is None
    if not promote:
        reason = "Refused: " + "; ".join(problems) + "."
    elif first:
        reason = "Promoted: no champion yet, and every floor is met."
    else:
        reason = (
            f"Promoted over champion {scores['champion_version']}: no metric "
            f"dropped more than {cfg.tolerance} and every floor is met."
        )
    (logger.info if promote else logger.warning)("Promotion: %s", reason)
    report = {
        "decision": "promote" if promote else "refuse",
        "reason": reason,
        "challenger_version": scores["challenger_version"],
        "champion_version": scores["champion_version"],
        "champion_registry_version": scores["champion_registry_version"],
        "checks": checks,
        "samples": scores["samples"],
    }
    release = {
        "promote": promote,
        "reason": reason,
        "card": challenger_card,
        "champion_registry_version": scores["champion_registry_version"],
    }
    if promote:
        release["model_bytes"] = challenger_bytes
    scalars = {"promoted": {"value": float(promote), "step": 0}}
    for who in ("challenger", "champion"):
        for metric, value in scores.get(who, {}).items():
            scalars[f"promotion_{who}_{metric}"] = {"value": value, "step": 0}
    return release, report, scalars
