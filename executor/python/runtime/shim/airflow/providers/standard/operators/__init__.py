"""airflow.providers.standard.operators (updraft's stand-in)."""
