"""Database access: one SQLAlchemy metadata, SQLite (default) or PostgreSQL."""
