"""airflow.sdk.bases (updraft's stand-in)."""
