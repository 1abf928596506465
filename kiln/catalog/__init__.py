"""The catalog: builds and image versions (SQLAlchemy 2 + Alembic; SQLite default, PostgreSQL supported)."""

from kiln.catalog import pipelines as _pipeline_tables  # noqa: F401  (their tables on Base)
from kiln.catalog import registry_models as registry_models  # registers the registry tables
from kiln.catalog.catalog import Catalog
from kiln.catalog.queries import LineageEntry, PackageMatch
from kiln.catalog.refs import ImageRef
from kiln.catalog.schemas import (
    ArtifactRecord,
    BuildRecord,
    ComponentRecord,
    EvidenceRecord,
    ImageRecord,
    NewImage,
    PackageRecord,
)

__all__ = [
    "ArtifactRecord",
    "BuildRecord",
    "Catalog",
    "ComponentRecord",
    "EvidenceRecord",
    "ImageRecord",
    "ImageRef",
    "LineageEntry",
    "NewImage",
    "PackageMatch",
    "PackageRecord",
]
