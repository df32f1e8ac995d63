"""airflow.sensors (updraft's stand-in)."""
