"""Project pipelines: data_processing, feedback, training, promotion, __default__.

`__default__` runs them all, in the order their datasets impose: feedback and
data_processing, then training, then the promotion gate.
"""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline under `pipelines/`; `__default__` runs them all."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
