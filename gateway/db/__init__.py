"""SQLAlchemy 2 tables, engine/session factories and small async query functions returning domain records."""
