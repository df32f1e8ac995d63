"""airflow.operators (updraft's stand-in)."""
