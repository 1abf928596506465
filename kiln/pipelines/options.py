"""How a pipeline run builds: the :class:`~kiln.models.BuildOptions` its request carries.

``refresh`` when the run exists because something in the archive is new (:func:`wants_refresh`), and
the pipeline's ``tests`` (Image Builder's ``ImageTestsConfiguration``): ``enabled: false`` builds
without the test phases (the build log, the provenance and the catalog's evidence summary say so and
name the run), ``timeout_minutes`` bounds the test stage (past it the build, and the run, fail).
"""

from __future__ import annotations

from kiln.models import BuildOptions
from kiln.pipelines.checks import wants_refresh
from kiln.pipelines.model import Pipeline


def run_options(pipeline: Pipeline, trigger: str) -> BuildOptions:
    """The options of a run of ``pipeline`` started by ``trigger`` (a retry passes its original's)."""
    return BuildOptions(
        refresh=wants_refresh(pipeline, trigger),
        skip_tests=not pipeline.tests.enabled,
        test_timeout=pipeline.tests.timeout_minutes * 60,
    )
