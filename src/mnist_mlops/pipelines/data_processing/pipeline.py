"""Wiring of data_processing."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    describe_dataset,
    normalize,
    render_drawn_test,
    split_dataset,
    validate_table,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Raw table -> validated -> normalised arrays -> splits -> drawn test set."""
    return Pipeline(
        [
            Node(
                validate_table,
                ["mnist_full", "params:data_processing"],
                "validated_mnist",
                name="validate_table_node",
            ),
            Node(
                describe_dataset,
                "validated_mnist",
                "dataset_info",
                name="describe_dataset_node",
            ),
            Node(
                normalize,
                "validated_mnist",
                ["images", "labels"],
                name="normalize_node",
            ),
            Node(
                split_dataset,
                ["images", "labels", "params:data_processing"],
                [
                    "x_train",
                    "y_train",
                    "x_test",
                    "y_test",
                    "x_official_test",
                    "y_official_test",
                ],
                name="split_dataset_node",
            ),
            Node(
                render_drawn_test,
                ["x_official_test", "y_official_test", "params:data_processing"],
                ["x_drawn_test", "y_drawn_test"],
                name="render_drawn_test_node",
            ),
        ]
    )
