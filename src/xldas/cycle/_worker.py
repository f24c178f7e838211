"""Child process of :func:`xldas.cycle.demo.run_demo`: run one experiment.

``python -m xldas.cycle._worker SPEC.json``, where the JSON holds the experiment
(``Experiment.canonical()``), its label, ``overwrite``, the log level and the path of the
result file, which receives the run's summary or the xldas error that stopped it.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    label = spec["label"]
    logger = logging.getLogger("xldas")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s %(name)s [{label}]: %(message)s")
    )
    logger.handlers = [handler]
    logger.setLevel(int(spec["level"]))
    logger.propagate = False
    warnings.filterwarnings("once", message=".*does not have a Zarr V3 specification.*")

    from xldas.cycle.config import Experiment
    from xldas.cycle.engine import run
    from xldas.errors import XldasError

    try:
        exp = Experiment.model_validate(spec["experiment"])
        result, rc = {"summary": run(exp, quiet=True, overwrite=spec["overwrite"]).summary()}, 0
    except XldasError as exc:
        logger.error("%s", exc)
        result, rc = {"error": type(exc).__name__, "message": str(exc)}, 1
    Path(spec["result"]).write_text(json.dumps(result))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
