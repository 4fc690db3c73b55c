"""The database: models, sessions and migrations."""
