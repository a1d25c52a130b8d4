"""Wiring of promotion."""

from kedro.pipeline import Node, Pipeline

from .nodes import decide_promotion, score_models


def create_pipeline(**kwargs) -> Pipeline:
    """Challenger and champion scored alike -> decision -> release and report."""
    return Pipeline(
        [
            Node(
                score_models,
                [
                    "litert_model",
                    "model_card",
                    "champion_model",
                    "x_official_test",
                    "y_official_test",
                    "x_drawn_test",
                    "y_drawn_test",
                    "x_feedback_holdout",
                    "y_feedback_holdout",
                    "params:promotion",
                ],
                "promotion_scores",
                name="score_models_node",
            ),
            # The release is saved first: a failed publication stops the run
            # before promotion_report claims a promotion.
            Node(
                decide_promotion,
                [
                    "promotion_scores",
                    "litert_model",
                    "model_card",
                    "params:promotion",
                ],
                ["champion_release", "promotion_report", "promotion_metrics_mlflow"],
                name="decide_promotion_node",
            ),
        ]
    )
