"""airflow.providers (updraft's stand-in)."""
