"""Context: the type of a task's context (a dict here), for annotations."""

Context = dict
