"""airflow.providers.standard (updraft's stand-in)."""
