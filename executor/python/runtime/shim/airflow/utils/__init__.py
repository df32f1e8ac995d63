"""airflow.utils (updraft's stand-in)."""
