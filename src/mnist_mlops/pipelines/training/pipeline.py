"""Wiring of training."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_model_card,
    check_parity,
    evaluate_model,
    export_model,
    report_training,
    train_model,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Arrays -> model -> metrics and plots -> LiteRT export -> parity -> model card."""
    return Pipeline(
        [
            Node(
                train_model,
                ["x_train", "y_train", "params:training"],
                ["keras_model", "training_history"],
                name="train_model_node",
            ),
            Node(
                report_training,
                "training_history",
                ["training_curves", "training_history_metrics"],
                name="report_training_node",
            ),
            Node(
                evaluate_model,
                [
                    "keras_model",
                    "x_test",
                    "y_test",
                    "x_official_test",
                    "y_official_test",
                ],
                ["metrics", "metrics_mlflow", "confusion_matrix", "test_probabilities"],
                name="evaluate_model_node",
            ),
            Node(
                export_model,
                ["keras_model", "params:training"],
                "litert_model",
                name="export_model_node",
            ),
            Node(
                check_parity,
                [
                    "litert_model",
                    "test_probabilities",
                    "x_test",
                    "x_official_test",
                    "y_official_test",
                    "params:training",
                ],
                "parity_report",
                name="check_parity_node",
            ),
            Node(
                build_model_card,
                [
                    "litert_model",
                    "metrics",
                    "parity_report",
                    "dataset_info",
                    "run_info",
                    "params:training",
                ],
                "model_card",
                name="build_model_card_node",
            ),
        ]
    )
