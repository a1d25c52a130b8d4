"""Wiring of training."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_model_card,
    check_parity,
    collect_metrics,
    compute_drift_reference,
    draw_training_digits,
    evaluate_drawn,
    evaluate_model,
    evaluate_numbers,
    export_model,
    fit_calibration,
    make_segment_examples,
    quality_gate,
    report_training,
    train_model,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Arrays -> model -> calibration, export -> metrics, numbers -> gate -> card.

    The card also carries the drift reference of the exported model.
    """
    return Pipeline(
        [
            Node(
                draw_training_digits,
                ["x_train", "y_train", "params:training"],
                ["x_drawn_train", "y_drawn_train"],
                name="draw_training_digits_node",
            ),
            Node(
                make_segment_examples,
                ["x_train", "y_train", "params:training"],
                ["x_segments", "y_segments"],
                name="make_segment_examples_node",
            ),
            Node(
                train_model,
                [
                    "x_train",
                    "y_train",
                    "params:training",
                    "x_feedback_train",
                    "y_feedback_train",
                    "x_segments",
                    "y_segments",
                    "x_drawn_train",
                    "y_drawn_train",
                ],
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
                fit_calibration,
                ["keras_model", "x_train", "y_train", "params:training"],
                "calibration",
                name="fit_calibration_node",
            ),
            Node(
                evaluate_model,
                [
                    "keras_model",
                    "x_test",
                    "y_test",
                    "x_official_test",
                    "y_official_test",
                    "calibration",
                    "params:training",
                ],
                ["evaluation_metrics", "confusion_matrix", "test_probabilities"],
                name="evaluate_model_node",
            ),
            Node(
                evaluate_drawn,
                [
                    "keras_model",
                    "x_drawn_test",
                    "y_drawn_test",
                    "calibration",
                    "params:training",
                ],
                ["drawn_metrics", "drawn_examples"],
                name="evaluate_drawn_node",
            ),
            Node(
                evaluate_numbers,
                [
                    "litert_model",
                    "x_official_test",
                    "y_official_test",
                    "params:training",
                ],
                "number_metrics",
                name="evaluate_numbers_node",
            ),
            Node(
                collect_metrics,
                [
                    "evaluation_metrics",
                    "drawn_metrics",
                    "params:training",
                    "number_metrics",
                ],
                ["metrics", "metrics_mlflow"],
                name="collect_metrics_node",
            ),
            Node(
                quality_gate,
                ["metrics", "params:training"],
                "quality_gate",
                name="quality_gate_node",
            ),
            Node(
                export_model,
                ["keras_model", "params:training", "calibration"],
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
                compute_drift_reference,
                ["litert_model", "x_train", "y_train", "params:training"],
                "drift_reference",
                name="compute_drift_reference_node",
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
                    "calibration",
                    "quality_gate",
                    "drift_reference",
                ],
                "model_card",
                name="build_model_card_node",
            ),
        ]
    )
