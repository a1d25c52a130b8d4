"""Wiring of feedback."""

from kedro.pipeline import Node, Pipeline

from .nodes import report_feedback, split_feedback, validate_feedback


def create_pipeline(**kwargs) -> Pipeline:
    """Store -> validated records -> training and holdout arrays -> report."""
    return Pipeline(
        [
            Node(
                validate_feedback,
                "feedback_records",
                "feedback_valid",
                name="validate_feedback_node",
            ),
            Node(
                split_feedback,
                ["feedback_valid", "params:feedback"],
                [
                    "x_feedback_train",
                    "y_feedback_train",
                    "x_feedback_holdout",
                    "y_feedback_holdout",
                ],
                name="split_feedback_node",
            ),
            Node(
                report_feedback,
                ["feedback_valid", "y_feedback_train", "y_feedback_holdout"],
                ["feedback_report", "feedback_metrics_mlflow"],
                name="report_feedback_node",
            ),
        ]
    )
