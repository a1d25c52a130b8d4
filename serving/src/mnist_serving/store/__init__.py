"""The feedback store: prediction records and their true labels (SQLAlchemy)."""
