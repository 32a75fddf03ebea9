"""Management services over ``gateway.db``: tenants, users, upstreams, models, keys.

The CLI, the JSON management API and the admin UI all go through these functions, so every
rule (tenant scoping, validation, secret handling, audit) lives in one place. Each function
takes an open ``AsyncSession`` and leaves committing to the caller's unit of work.
"""
