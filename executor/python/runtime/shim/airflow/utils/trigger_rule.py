"""airflow.utils.trigger_rule: the trigger rules' names."""


class TriggerRule(object):
    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_SKIPPED = "none_skipped"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    ALWAYS = "always"

    @classmethod
    def all_triggers(cls):
        return set(v for k, v in vars(cls).items() if k.isupper())

    @classmethod
    def is_valid(cls, trigger_rule):
        return trigger_rule in cls.all_triggers()
