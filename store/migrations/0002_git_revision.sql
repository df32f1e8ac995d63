-- The git commit a DAG run was created from ('' for a local folder), and
-- the one each DAG version was first seen in.
ALTER TABLE dag_runs ADD COLUMN git_revision TEXT NOT NULL DEFAULT '';
ALTER TABLE dag_versions ADD COLUMN git_revision TEXT NOT NULL DEFAULT '';
