"""airflow.hooks (updraft's stand-in)."""
