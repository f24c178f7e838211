"""The cycling engine: experiment configuration, forecast/analysis loop, atomic checkpoints.

Public names
------------
:class:`Experiment`
    validated experiment configuration (``Experiment.from_yaml(path).run(client=None)``).
:func:`run`, :func:`catch_up`
    run/resume every cycle of the period; real-time catch-up on newly published observations.
:func:`open_output`
    open an experiment's output store (analysis, forecast, diagnostics groups) lazily.
"""

from xldas.cycle.config import Experiment

__all__ = ["Experiment"]
