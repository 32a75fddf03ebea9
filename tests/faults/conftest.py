"""The fault suite's fixtures (defined in ``sites``, which the tests also import for ``Site``)."""

from sites import fault_upstream, postgres_site, sqlite_site

__all__ = ["fault_upstream", "postgres_site", "sqlite_site"]
